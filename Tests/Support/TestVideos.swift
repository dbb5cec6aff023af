import Foundation

/// Videos made for tests with Debian's `ffmpeg` command: coloured scenes that cut at known times, with a
/// white square moving across them so that every second looks different.
public enum TestVideos {
    public struct Scene: Sendable {
        public let color: String
        public let seconds: Double

        public init(_ color: String, _ seconds: Double) {
            self.color = color
            self.seconds = seconds
        }
    }

    public static let defaultScenes = [Scene("red", 2), Scene("blue", 2.5), Scene("green", 1.5)]

    /// Writes the scenes as one video; `encoding` holds ffmpeg's output options (codec and container).
    @discardableResult
    public static func make(at url: URL, scenes: [Scene] = defaultScenes, size: String = "160x120", rate: Int = 25,
                            encoding: [String] = ["-c:v", "libx264", "-pix_fmt", "yuv420p"]) throws -> URL {
        let inputs = scenes.enumerated().map { index, scene in
            "color=c=\(scene.color):s=\(size):r=\(rate):d=\(scene.seconds)[s\(index)]"
        }
        let labels = scenes.indices.map { "[s\($0)]" }.joined()
        let graph = inputs.joined(separator: ";") + ";\(labels)concat=n=\(scenes.count):v=1:a=0,"
            + "drawbox=x='mod(t*30\\,iw-20)':y=ih/3:w=20:h=20:color=white:t=fill"
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try ffmpeg(["-f", "lavfi", "-i", graph] + encoding + [url.path])
        return url
    }

    /// A file with sound and no picture.
    public static func makeAudioOnly(at url: URL, seconds: Double = 2) throws {
        try ffmpeg(["-f", "lavfi", "-i", "sine=frequency=440:duration=\(seconds)", "-c:a", "aac", url.path])
    }

    /// One frame at `time` as a PNG, decoded by ffmpeg itself (not by the code under test).
    public static func extractFrame(of video: URL, at time: Double, to url: URL) throws {
        try ffmpeg(["-ss", String(time), "-i", video.path, "-frames:v", "1", url.path])
    }

    public static func ffmpeg(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"] + arguments
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let message = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "ffmpeg failed: " + String(decoding: message, as: UTF8.self)])
        }
    }
}
