import Foundation
import ImageIO
import LoupeTestSupport
import Testing

@testable import VideoIO

/// Frame sampling from videos the tests make with ffmpeg: red for 2 s, blue for 2.5 s, green for 1.5 s,
/// at 25 frames a second, with a white square moving across.
@Suite struct VideoReaderTests {
    static func folder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-video-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func frames(_ path: String, interval: Double = 1, allFrames: Bool = false, shorterSide: Int = 224,
                       limits: VideoLimits = VideoLimits()) throws -> [VideoFrame] {
        let reader = try VideoReader(path: path, shorterSide: shorterSide, sampling: FrameSampling(interval: interval, decodesAllFrames: allFrames),
                                     limits: limits)
        var frames = [VideoFrame]()
        while let frame = try reader.next() { frames.append(frame) }
        return frames
    }

    /// The colour at the frame's top-left corner, away from the moving square.
    static func corner(_ frame: VideoFrame) -> (Int, Int, Int) {
        let i = (2 * frame.image.width + 2) * 3
        return (Int(frame.image.pixels[i]), Int(frame.image.pixels[i + 1]), Int(frame.image.pixels[i + 2]))
    }

    /// Frames come on the schedule or up to three frames (0.12 s at 25 frames a second) after it: frames
    /// no other frame refers to are not decoded.
    static func onSchedule(_ frames: [VideoFrame], _ expected: [Double]) -> Bool {
        frames.count == expected.count && zip(frames, expected).allSatisfy { frame, time in frame.time >= time - 0.001 && frame.time <= time + 0.121 }
    }

    static func error(_ body: () throws -> Void) -> VideoError? {
        do {
            try body()
            return nil
        } catch {
            return error as? VideoError
        }
    }

    @Test func framesComeEveryIntervalAndAtEachCut() throws {
        let video = try TestVideos.make(at: try Self.folder().appendingPathComponent("scenes.mp4"))
        let frames = try Self.frames(video.path)
        // The schedule gives 0…6 s (the last frame is at 6.0); the cut to green (at 4.52 s, on a frame
        // boundary) is off the schedule and comes as a scene change. (The cut to blue at 2 s falls on the schedule.)
        #expect(Self.onSchedule(frames, [0, 1, 2, 3, 4, 4.52, 5, 6]), "\(frames.map(\.time))")
        #expect(frames.map(\.isSceneChange) == [false, false, false, false, false, true, false, false])
        let colors = frames.map(Self.corner)
        for (frame, color) in zip(frames, colors) {
            let expected = frame.time < 2 ? (255, 0, 0) : frame.time < 4.5 ? (0, 0, 255) : (0, 128, 0)
            #expect(abs(color.0 - expected.0) <= 12 && abs(color.1 - expected.1) <= 12 && abs(color.2 - expected.2) <= 12,
                    "frame at \(frame.time) s has \(color), expected about \(expected)")
        }
    }

    @Test func framesAreScaledToTheShorterSideWithTheAspectKept() throws {
        let folder = try Self.folder()
        let video = try TestVideos.make(at: folder.appendingPathComponent("wide.mp4"), size: "640x360")
        let reader = try VideoReader(path: video.path, shorterSide: 224)
        let first = try #require(try reader.next())
        #expect((first.image.width, first.image.height) == (398, 224))
        #expect((reader.width, reader.height) == (640, 360))
        #expect(reader.codec == "h264")
        // Never enlarged: a 160×120 video stays 160×120.
        let small = try VideoReader(path: TestVideos.make(at: folder.appendingPathComponent("small.mp4")).path, shorterSide: 224)
        let frame = try #require(try small.next())
        #expect((frame.image.width, frame.image.height) == (160, 120))
    }

    @Test(arguments: [
        ("h264.mov", ["-c:v", "libx264", "-pix_fmt", "yuv420p"]),
        ("vp9.webm", ["-c:v", "libvpx-vp9", "-b:v", "200k", "-deadline", "realtime"]),
        ("vp8.mkv", ["-c:v", "libvpx", "-b:v", "200k", "-deadline", "realtime"]),
        ("mpeg4.avi", ["-c:v", "mpeg4", "-q:v", "4"]),
        ("mjpeg.avi", ["-c:v", "mjpeg", "-q:v", "4"]),
        ("av1.mkv", ["-c:v", "libaom-av1", "-cpu-used", "8", "-b:v", "200k"]),
        // What phones and cameras record: HEVC in 8 and 10 bits (tagged hvc1, as Apple's players want),
        // and ProRes 422 (10-bit 4:2:2).
        ("hevc.mp4", ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error", "-tag:v", "hvc1", "-pix_fmt", "yuv420p"]),
        ("hevc-10bit.mov", ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error", "-tag:v", "hvc1", "-pix_fmt", "yuv420p10le"]),
        ("prores.mov", ["-c:v", "prores_ks", "-profile:v", "2", "-pix_fmt", "yuv422p10le"]),
    ])
    func containersAndCodecsGiveTheSameSchedule(name: String, encoding: [String]) throws {
        let video = try TestVideos.make(at: try Self.folder().appendingPathComponent(name), encoding: encoding)
        // Every frame the schedule needs is decoded; MPEG-4's keyframes (every 12 frames) would otherwise
        // let the reader decode keyframes only (the next test).
        let frames = try Self.frames(video.path, allFrames: true)
        #expect(Self.onSchedule(frames, [0, 1, 2, 3, 4, 4.52, 5, 6]), "\(name): \(frames.map(\.time))")
    }

    /// Videos with a keyframe every second (25 frames) or more often: only keyframes are decoded, each
    /// sample is the first keyframe at or after its time, the cut to green at 4.52 s is seen at the first
    /// keyframe after it, and every frame taken has the pixels a full decode gives at that time.
    @Test(arguments: [
        ("h264.mp4", ["-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p"], 1.0),
        ("hevc.mov", ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error:keyint=25", "-tag:v", "hvc1", "-pix_fmt", "yuv420p"], 1.0),
        ("mpeg4.avi", ["-c:v", "mpeg4", "-q:v", "4"], 0.48),
        ("mjpeg.avi", ["-c:v", "mjpeg", "-q:v", "4"], 0.04),
    ])
    func keyframesAloneGiveTheFramesOfAFullDecode(name: String, encoding: [String], keyframeGap: Double) throws {
        let video = try TestVideos.make(at: try Self.folder().appendingPathComponent(name), encoding: encoding)
        let reader = try VideoReader(path: video.path, shorterSide: 224)
        #expect(reader.decodesKeyframesOnly, "\(name)")
        var frames = [VideoFrame]()
        while let frame = try reader.next() { frames.append(frame) }
        let times = frames.map(\.time)
        #expect(times.first == 0, "\(name): \(times)")
        // Each sample at the first keyframe at or after its time; the last within an interval and a
        // keyframe of the end (6 s).
        var tick = 1.0
        for frame in frames.dropFirst() where !frame.isSceneChange {
            #expect(frame.time >= tick - 0.001 && frame.time <= tick + keyframeGap + 0.001, "\(name): \(times)")
            tick = (frame.time + 0.001).rounded(.down) + 1
        }
        #expect(times.last.map { $0 >= 6 - 1 - keyframeGap - 0.001 } == true, "\(name): \(times)")
        let green = try #require(frames.first { $0.time >= 4.52 - 0.001 }, "\(name): \(times)")
        #expect(green.time <= 4.52 + keyframeGap + 0.001 && Self.corner(green).1 > 100, "\(name): \(times)")
        // Every decoded frame, for comparison: each one at or after each 0.04 s with everything decoded.
        let everything = try Self.frames(video.path, interval: 0.04, allFrames: true)
        for frame in frames {
            let same = everything.first { abs($0.time - frame.time) < 0.001 }
            #expect(same != nil && same?.image.pixels == frame.image.pixels,
                    "\(name): the frame at \(frame.time) s is not a full decode's (\(everything.map(\.time)))")
        }
        // Asked to, the reader decodes everything.
        let full = try VideoReader(path: video.path, shorterSide: 224, sampling: FrameSampling(decodesAllFrames: true))
        #expect(!full.decodesKeyframesOnly)
    }

    @Test func keyframesFartherApartThanTheIntervalMeanAFullDecode() throws {
        // x264's default here: one keyframe, at the start of the 6-second video.
        let video = try TestVideos.make(at: try Self.folder().appendingPathComponent("scenes.mp4"))
        #expect(try !VideoReader(path: video.path, shorterSide: 224).decodesKeyframesOnly)
        #expect(try !VideoReader(path: video.path, shorterSide: 224, sampling: FrameSampling(interval: 5)).decodesKeyframesOnly)
        #expect(try VideoReader(path: video.path, shorterSide: 224, sampling: FrameSampling(interval: 7)).decodesKeyframesOnly)
        // WebM written by FFmpeg lists one cue per cluster (about every 5 s), not every keyframe: a full decode.
        let webm = try TestVideos.make(at: try Self.folder().appendingPathComponent("g25.webm"),
                                       encoding: ["-c:v", "libvpx-vp9", "-g", "25", "-b:v", "200k", "-deadline", "realtime"])
        #expect(try !VideoReader(path: webm.path, shorterSide: 224).decodesKeyframesOnly)
    }

    @Test func aLongerIntervalTakesFewerFramesButStillEveryCut() throws {
        let video = try TestVideos.make(at: try Self.folder().appendingPathComponent("scenes.mp4"))
        let frames = try Self.frames(video.path, interval: 3, allFrames: true)
        #expect(Self.onSchedule(frames, [0, 2, 3, 4.52, 6]), "\(frames.map(\.time))")
        #expect(frames.map(\.isSceneChange) == [false, true, false, true, false])
    }

    @Test func badFilesEndInClearErrors() throws {
        let folder = try Self.folder()
        let manager = FileManager.default
        // Zero bytes.
        let empty = folder.appendingPathComponent("empty.mp4")
        #expect(manager.createFile(atPath: empty.path, contents: Data()))
        #expect(Self.error { _ = try Self.frames(empty.path) }?.code == "EmptyVideo")
        // Not a video at all.
        let text = folder.appendingPathComponent("notes.mp4")
        try Data("this is not a video\n".utf8).write(to: text)
        #expect(Self.error { _ = try Self.frames(text.path) }?.code == "InvalidVideoFormat")
        // Random bytes.
        var generator = SeededGenerator(seed: 7)
        let noise = folder.appendingPathComponent("noise.mkv")
        try Data((0..<50_000).map { _ in UInt8.random(in: 0...255, using: &generator) }).write(to: noise)
        #expect(Self.error { _ = try Self.frames(noise.path) }?.code == "InvalidVideoFormat")
        // Sound only.
        let audio = folder.appendingPathComponent("sound.mp4")
        try TestVideos.makeAudioOnly(at: audio)
        let noVideo = Self.error { _ = try Self.frames(audio.path) }
        #expect(noVideo?.code == "NoVideoStream")
        #expect(noVideo?.message.contains("no video stream") == true)
        // Missing.
        #expect(Self.error { _ = try Self.frames(folder.appendingPathComponent("absent.mp4").path) }?.code == "FileNotFound")
    }

    @Test func aVideoWithNoFramesIsRefused() throws {
        let folder = try Self.folder()
        // Sound with an empty video track: the container has a video stream and no frame in it.
        let video = folder.appendingPathComponent("frameless.mkv")
        try TestVideos.ffmpeg(["-f", "lavfi", "-i", "sine=duration=1", "-f", "lavfi", "-i", "color=c=red:s=64x64:d=1",
                               "-map", "0:a", "-map", "1:v", "-frames:v", "0", "-c:a", "pcm_s16le", "-c:v", "mpeg4", video.path])
        let error = Self.error { _ = try Self.frames(video.path) }
        #expect(error?.code == "EmptyVideo" || error?.code == "NoVideoStream", "\(String(describing: error))")
    }

    @Test func truncatedFilesAreRefusedNotHalfRead() throws {
        let folder = try Self.folder()
        let long: [TestVideos.Scene] = [.init("red", 5), .init("blue", 5), .init("yellow", 5)]
        // MP4 with its index at the end: cut in half, it cannot be opened.
        let mp4 = try TestVideos.make(at: folder.appendingPathComponent("cut.mp4"), scenes: long)
        let mp4Bytes = try Data(contentsOf: mp4)
        try mp4Bytes.prefix(mp4Bytes.count / 2).write(to: mp4)
        let mp4Error = Self.error { _ = try Self.frames(mp4.path) }
        #expect(mp4Error?.code == "InvalidVideoFormat" || mp4Error?.code == "CorruptVideo", "\(String(describing: mp4Error))")
        // Matroska states its duration first: cut in half, its frames stop early.
        let mkv = try TestVideos.make(at: folder.appendingPathComponent("cut.mkv"), scenes: long)
        let mkvBytes = try Data(contentsOf: mkv)
        try mkvBytes.prefix(mkvBytes.count / 2).write(to: mkv)
        let mkvError = Self.error { _ = try Self.frames(mkv.path) }
        #expect(mkvError?.code == "CorruptVideo", "\(String(describing: mkvError))")
        #expect(mkvError?.message.contains("truncated") == true)
    }

    @Test func limitsAreCheckedBeforeDecoding() throws {
        let video = try TestVideos.make(at: try Self.folder().appendingPathComponent("scenes.mp4"))
        let long = Self.error { _ = try Self.frames(video.path, limits: VideoLimits(maximumSeconds: 5)) }
        #expect(long?.code == "VideoTooLong")
        let large = Self.error { _ = try Self.frames(video.path, limits: VideoLimits(maximumBytes: 1000)) }
        #expect(large?.code == "InvalidVideoSize")
        #expect(Self.error { _ = try VideoReader(path: video.path, shorterSide: 224, sampling: FrameSampling(interval: 0)) }?.code == "InvalidArgument")
        // Too many frames for the interval: refused from the duration before decoding.
        let many = Self.error { _ = try Self.frames(video.path, interval: 0.5, limits: VideoLimits(maximumFrames: 10)) }
        #expect(many?.code == "VideoTooLong" && many?.message.contains("more than 10 frames") == true)
        // Eight frames (the schedule and the cut) fit a limit of 8, not 7: the count is also kept while decoding.
        #expect(try Self.frames(video.path, limits: VideoLimits(maximumFrames: 8)).count == 8)
        #expect(Self.error { _ = try Self.frames(video.path, limits: VideoLimits(maximumFrames: 7)) }?.code == "VideoTooLong")
    }

    /// A playlist or concat list dressed as a video must not make FFmpeg read other files.
    @Test func filesNamingOtherFilesAreRefused() throws {
        let folder = try Self.folder()
        let real = try TestVideos.make(at: folder.appendingPathComponent("real.mp4"))
        let playlist = folder.appendingPathComponent("list.mp4")
        try Data("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n\(real.path)\n#EXT-X-ENDLIST\n".utf8).write(to: playlist)
        #expect(Self.error { _ = try Self.frames(playlist.path) }?.code == "InvalidVideoFormat")
        let concat = folder.appendingPathComponent("concat.mkv")
        try Data("ffconcat version 1.0\nfile '\(real.path)'\n".utf8).write(to: concat)
        #expect(Self.error { _ = try Self.frames(concat.path) }?.code == "InvalidVideoFormat")
    }

    @Test func clockText() {
        #expect(VideoReader.clock(0) == "0:00.0")
        #expect(VideoReader.clock(65.24) == "1:05.2")
        #expect(VideoReader.clock(3725) == "1:02:05.0")
    }
}
