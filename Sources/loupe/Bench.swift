import ArgumentParser
import CLIP
import Foundation
import ImageIO
import Tensor

extension Loupe {
    struct Bench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Measure the engine: image throughput and latency, text latency, peak memory; prints one JSON object.",
            discussion: """
                Image figures are the model's forward pass from pixel values (what the reference benchmarks time too); \
                decoding a 640×480 JPEG (or --decode-image) and preprocessing a 640×480 image are reported separately. Every figure follows a warm-up run. \
                text_weights_read_ms is one read of as many bytes as the text weights on every thread: the floor \
                under a short text on this machine, in the same minute.
                """)

        @OptionGroup var options: ModelOptions
        @Option(help: "Images per batch for the throughput figure.") var batch = 32
        @Option(help: "Images to embed for the throughput figure.") var images = 64
        @Option(help: "Threads for the matrix products.") var threads = 2
        @Option(help: "Repetitions for each latency figure (the median is reported).") var repeats = 9
        @Option(help: "An image file to time the decoding of (default: a generated 640×480 JPEG).") var decodeImage: String?

        func validate() throws {
            guard batch >= 1, images >= batch, threads >= 1, repeats >= 1 else {
                throw ValidationError("--batch, --threads and --repeats must be positive and --images at least --batch")
            }
        }

        func run() async throws {
            ComputeThreads.set(threads)
            let folder = try await ModelLoading.locate(options.model)
            let loadStart = ContinuousClock.now
            let model = try ModelLoading.load(folder, name: options.model, precision: options.precision)
            let loadSeconds = Self.seconds(ContinuousClock.now - loadStart)

            let photo = Self.syntheticImage(width: 640, height: 480)
            let pixels = model.pixelValues(for: photo)
            let preprocessMs = Self.median(repeats) { _ = model.pixelValues(for: photo) } * 1000
            // A JPEG (--decode-image, or that picture at quality 90) decoded as a request's image is.
            let jpeg = try decodeImage.map { try ImageDecoder().readFile(at: $0) } ?? [UInt8](try Thumbnail.jpeg(from: photo, maximumSide: 640, quality: 90))
            let decoder = model.imageDecoder(exact: options.exactDecode)
            let decodeMs = Self.median(repeats) { _ = try? decoder.decode(jpeg) } * 1000

            // Throughput: `images` images in batches of `batch`, after one warm-up batch.
            let batchInput = [[Float]](repeating: pixels, count: batch)
            _ = model.embed(pixelValues: batchInput)
            let start = ContinuousClock.now
            for _ in 0..<(images / batch) { _ = model.embed(pixelValues: batchInput) }
            let imagesPerSecond = Double(images / batch * batch) / Self.seconds(ContinuousClock.now - start)

            let imageMs = Self.median(repeats) { _ = model.embed(pixelValues: [pixels]) } * 1000
            let longTokens = try model.tokens(for: String(repeating: "a painting of a house by the sea ", count: 20))
            let shortTokens = try model.tokens(for: "a blue house")
            let text77Ms = Self.median(repeats) { _ = try? model.embed(tokens: longTokens) } * 1000
            let textShortMs = Self.median(repeats) { _ = try? model.embed(tokens: shortTokens) } * 1000
            let residentMegabytes = Self.peakResidentMegabytes()  // before the probe's buffer below

            // The floor under the short text: one read of as many bytes as the text weights, in the same
            // kind of pages, on every thread, timed the same way, in the same minute.
            let probe = MemoryProbe(byteCount: model.textWeightBytes)
            let weightsReadMs = probe.map { probe in Self.median(repeats) { _ = probe.readAll() } * 1000 }

            let report: [String: Any] = [
                "model": options.model, "precision": options.precision.rawValue, "threads": threads, "batch": batch,
                "images_per_s": Self.round(imagesPerSecond), "image_ms": Self.round(imageMs),
                "text77_ms": Self.round(text77Ms), "text77_tokens": longTokens.count,
                "text_short_ms": Self.round(textShortMs), "text_short_tokens": shortTokens.count,
                "preprocess_640x480_ms": Self.round(preprocessMs), "decode_ms": Self.round(decodeMs), "load_s": Self.round(loadSeconds),
                "rss_mb": Self.round(residentMegabytes),
                "text_weights_mb": Self.round(Double(model.textWeightBytes) / 1e6),
                "text_weights_read_ms": weightsReadMs.map(Self.round) ?? NSNull(),
            ]
            let data = try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys])
            StandardStreams.writeOut(String(decoding: data, as: UTF8.self) + "\n")
        }

        static func seconds(_ duration: Duration) -> Double {
            Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        }

        static func round(_ value: Double) -> Double { (value * 100).rounded() / 100 }

        /// Median seconds of `count` runs, after one warm-up run.
        static func median(_ count: Int, _ body: () -> Void) -> Double {
            body()
            let times = (0..<count).map { _ -> Double in
                let start = ContinuousClock.now
                body()
                return seconds(ContinuousClock.now - start)
            }.sorted()
            return times[times.count / 2]
        }

        /// A deterministic image with gradients and texture.
        static func syntheticImage(width: Int, height: Int) -> RGBImage {
            var pixels = [UInt8](repeating: 0, count: width * height * 3)
            for y in 0..<height {
                for x in 0..<width {
                    let i = (y * width + x) * 3
                    pixels[i] = UInt8((x * 255) / width)
                    pixels[i + 1] = UInt8((y * 255) / height)
                    pixels[i + 2] = UInt8(((x ^ y) & 0xFF))
                }
            }
            return RGBImage(width: width, height: height, pixels: pixels)
        }

        /// VmHWM from /proc: the most memory this process has held.
        static func peakResidentMegabytes() -> Double {
            guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
                let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
                let kilobytes = Double(line.split(separator: " ").dropFirst().first ?? "")
            else { return 0 }
            return kilobytes / 1024
        }
    }
}
