import ArgumentParser
import CLIP
import Foundation
import ModelHub
import Tensor

/// Finding and loading a model for a command, with download progress on stderr.
enum ModelLoading {
    static func locate(_ model: String) async throws -> URL {
        let bar = ProgressBar()
        do {
            let folder = try await ModelLocator().locate(model) { bar.update($0) }
            bar.finish()
            return folder
        } catch let error as HubError {
            bar.finish()
            throw CommandFailure(error.description)
        }
    }

    static func load(_ folder: URL, name: String, precision: Precision = .float32) throws -> any ImageTextModel {
        let kernel: ProductKernel
        switch precision {
        case .float32: kernel = .best
        case .int8:
            guard ProductKernel.int8.isSupported else {
                throw CommandFailure("--precision int8 needs a processor with AVX-512 VNNI, which this one does not report")
            }
            kernel = .int8
        }
        do {
            return try ModelFamily.load(folder: folder, kernel: kernel)
        } catch let error as CLIPError {
            throw CommandFailure("cannot load model \(name) from \(folder.path): \(error)")
        }
    }
}

enum StandardStreams {
    static func writeOut(_ text: String) { FileHandle.standardOutput.write(Data(text.utf8)) }
    static func writeError(_ text: String) { FileHandle.standardError.write(Data(text.utf8)) }
}

/// Download progress on stderr: a bar redrawn in place on a terminal, a line every few seconds otherwise.
final class ProgressBar: @unchecked Sendable {
    private let lock = NSLock()
    private let interactive = isatty(STDERR_FILENO) != 0
    private var lastDraw = Date.distantPast
    private var started = Date()
    private var currentFile = ""
    private var drew = false

    func update(_ progress: DownloadProgress) {
        lock.lock()
        defer { lock.unlock() }
        if progress.file != currentFile {
            if drew && interactive { StandardStreams.writeError("\n") }
            currentFile = progress.file
            started = Date()
            lastDraw = .distantPast
        }
        let now = Date()
        let done = progress.receivedBytes >= progress.totalBytes
        guard done || now.timeIntervalSince(lastDraw) >= (interactive ? 0.1 : 5) else { return }
        lastDraw = now
        drew = true
        let fraction = progress.totalBytes > 0 ? Double(progress.receivedBytes) / Double(progress.totalBytes) : 1
        let rate = Double(progress.receivedBytes) / max(now.timeIntervalSince(started), 0.001) / 1_048_576
        let megabytes = String(format: "%.1f/%.1f MB %3.0f%% %.1f MB/s", Double(progress.receivedBytes) / 1_048_576,
                               Double(progress.totalBytes) / 1_048_576, fraction * 100, rate)
        if interactive {
            let width = 30
            let filled = Int(fraction * Double(width))
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            StandardStreams.writeError("\r\(progress.file) \(bar) \(megabytes)\u{1B}[K")
        } else {
            StandardStreams.writeError("downloading \(progress.file): \(megabytes)\n")
        }
    }

    func finish() {
        lock.lock()
        defer { lock.unlock() }
        if drew && interactive { StandardStreams.writeError("\n") }
        drew = false
    }
}

/// A command that could not do its work: printed as "Error: …", exit status 1, no usage text.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
