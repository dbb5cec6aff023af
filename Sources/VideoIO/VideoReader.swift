import CVideo
import Foundation
import ImageIO

/// Why a video was refused. `code` is stable and machine-readable, like `ImageError`'s.
public struct VideoError: Error, Sendable, Equatable, CustomStringConvertible {
    public let code: String
    public let message: String

    public init(code: String, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

/// What is refused before decoding starts.
public struct VideoLimits: Sendable, Equatable {
    public var maximumSeconds: Double
    public var maximumBytes: Int
    /// Frames taken from one video: its frames are held (vector and thumbnail, about 20 kB each) until
    /// the video is stored in one step, so a tiny interval on a long video is refused, not swapped.
    public var maximumFrames: Int

    public init(maximumSeconds: Double = 4 * 3600, maximumBytes: Int = 64 << 30, maximumFrames: Int = 20_000) {
        self.maximumSeconds = maximumSeconds
        self.maximumBytes = maximumBytes
        self.maximumFrames = maximumFrames
    }
}

/// Which frames become items: one every `interval` seconds, plus the first frame after each cut.
public struct FrameSampling: Sendable, Equatable {
    public var interval: Double
    /// Mean absolute difference (0...1) of small RGB copies of consecutive frames counted as a cut.
    public var sceneThreshold: Double
    /// Decode every frame the schedule and cut detection may need, even when the video has a keyframe
    /// at least every interval. By default such a video has only its keyframes decoded: a sample then
    /// comes at the first keyframe at or after its time, and a cut is seen at a keyframe (encoders put
    /// one at each cut), for a fraction of the decoding.
    public var decodesAllFrames: Bool

    public init(interval: Double = 1, sceneThreshold: Double = 0.25, decodesAllFrames: Bool = false) {
        self.interval = interval
        self.sceneThreshold = sceneThreshold
        self.decodesAllFrames = decodesAllFrames
    }
}

public struct VideoFrame: Sendable {
    /// Seconds from the start of the video.
    public let time: Double
    public let isSceneChange: Bool
    public let image: RGBImage
}

/// Samples a video file's frames with FFmpeg's libraries, scaled so their shorter side is the model's
/// input size. One reader is used from one thread at a time.
public final class VideoReader {
    public let duration: Double?
    public let width: Int
    public let height: Int
    public let codec: String
    public let container: String
    /// Whether only the video's keyframes are decoded (`FrameSampling.decodesAllFrames`).
    public let decodesKeyframesOnly: Bool
    public let sampling: FrameSampling
    private let limits: VideoLimits
    private let handle: OpaquePointer
    private let outputWidth: Int
    private let outputHeight: Int
    private var framesTaken = 0

    public init(path: String, shorterSide: Int, sampling: FrameSampling = FrameSampling(), limits: VideoLimits = VideoLimits()) throws(VideoError) {
        guard sampling.interval > 0, sampling.interval.isFinite else { throw VideoError(code: "InvalidArgument", "the frame interval must be a positive number of seconds") }
        let size: Int
        do {
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            size = (attributes[.size] as? NSNumber)?.intValue ?? 0
        } catch {
            throw VideoError(code: "FileNotFound", "no readable file at \(path)")
        }
        guard size > 0 else { throw VideoError(code: "EmptyVideo", "the video is empty (0 bytes)") }
        guard size <= limits.maximumBytes else {
            throw VideoError(code: "InvalidVideoSize", "the video is \(size) bytes, over the limit of \(limits.maximumBytes) bytes")
        }
        var info = loupe_video_info()
        var message = [CChar](repeating: 0, count: 512)
        guard let handle = loupe_video_open(path, Int32(shorterSide), sampling.interval, sampling.decodesAllFrames ? 1 : 0, &info, &message,
                                            message.count) else {
            let reason = message.withUnsafeBytes(Self.text)
            throw VideoError(code: reason.contains("no video stream") ? "NoVideoStream" : "InvalidVideoFormat", reason)
        }
        // Refused before `self` is whole: a class whose init throws after that is deinitialised, which
        // would close the handle a second time.
        if info.duration > limits.maximumSeconds {
            loupe_video_close(handle)
            throw VideoError(code: "VideoTooLong", "the video lasts \(Self.clock(info.duration)), over the limit of \(Self.clock(limits.maximumSeconds))")
        }
        if info.duration / sampling.interval > Double(limits.maximumFrames) {
            loupe_video_close(handle)
            throw Self.tooManyFrames(limits, sampling)
        }
        self.handle = handle
        self.duration = info.duration >= 0 ? info.duration : nil
        self.width = Int(info.width)
        self.height = Int(info.height)
        self.outputWidth = Int(info.output_width)
        self.outputHeight = Int(info.output_height)
        self.codec = withUnsafeBytes(of: info.codec, Self.text)
        self.container = withUnsafeBytes(of: info.container, Self.text)
        self.decodesKeyframesOnly = info.keyframes_only != 0
        self.sampling = sampling
        self.limits = limits
    }

    deinit { loupe_video_close(handle) }

    /// The next sampled frame, or nil at the end. The end is checked: a video with no frame, one whose
    /// frames stop well before its stated duration (a cut-off file), or one that is mostly damaged
    /// packets is refused rather than half ingested.
    public func next() throws(VideoError) -> VideoFrame? {
        var pixels = [UInt8](repeating: 0, count: outputWidth * outputHeight * 3)
        var frame = loupe_video_frame()
        var message = [CChar](repeating: 0, count: 512)
        let status = pixels.withUnsafeMutableBufferPointer { pixels in
            loupe_video_next(handle, sampling.interval, sampling.sceneThreshold, limits.maximumSeconds, pixels.baseAddress, &frame,
                             &message, message.count)
        }
        switch status {
        case 1:
            // A duration the header understated: the count is checked as frames come too.
            guard framesTaken < limits.maximumFrames else { throw Self.tooManyFrames(limits, sampling) }
            framesTaken += 1
            return VideoFrame(time: frame.time, isSceneChange: frame.scene_change != 0,
                              image: RGBImage(width: outputWidth, height: outputHeight, pixels: pixels))
        case 0:
            try checkEnd()
            return nil
        default:
            throw VideoError(code: "CorruptVideo", "the video is damaged: \(message.withUnsafeBytes(Self.text))")
        }
    }

    private func checkEnd() throws(VideoError) {
        var damaged: Int64 = 0, read: Int64 = 0, lastDecoded = 0.0
        loupe_video_progress(handle, &damaged, &read, &lastDecoded)
        guard framesTaken > 0 else {
            throw VideoError(code: damaged > 0 ? "CorruptVideo" : "EmptyVideo",
                             damaged > 0 ? "no frame of the video could be decoded" : "the video has no frames")
        }
        if damaged * 2 > read {
            throw VideoError(code: "CorruptVideo", "the video is damaged: \(damaged) of its \(read) packets could not be decoded")
        }
        // Frames that end well before the stated duration mean a cut-off file, unless the stop came
        // from the length limit. With keyframes only, the last one may come up to an interval early.
        let lastSeen = lastDecoded + (decodesKeyframesOnly ? sampling.interval : 0)
        if let duration, duration <= limits.maximumSeconds, lastSeen + 2 < duration * 0.9 {
            throw VideoError(code: "CorruptVideo",
                             "the video stops at \(Self.clock(lastDecoded)) of its \(Self.clock(duration)): the file is truncated or damaged")
        }
    }

    /// A NUL-terminated C string from a buffer the C side filled.
    private static func text(_ bytes: UnsafeRawBufferPointer) -> String { String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self) }

    private static func tooManyFrames(_ limits: VideoLimits, _ sampling: FrameSampling) -> VideoError {
        VideoError(code: "VideoTooLong", "one frame every \(sampling.interval) s gives more than \(limits.maximumFrames) frames; take a longer interval")
    }

    /// Seconds as h:mm:ss.s or m:ss.s.
    public static func clock(_ seconds: Double) -> String {
        let tenths = Int((seconds * 10).rounded())
        let (hours, minutes, rest) = (tenths / 36000, tenths / 600 % 60, Double(tenths % 600) / 10)
        let secondsText = String(format: "%04.1f", rest)
        return hours > 0 ? String(format: "%d:%02d:", hours, minutes) + secondsText : "\(minutes):" + secondsText
    }
}
