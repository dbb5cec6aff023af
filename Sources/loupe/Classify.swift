import ArgumentParser
import Embedding
import Foundation
import ImageIO
import Server

extension Loupe {
    struct Classify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Zero-shot classification: each label's probability for each image; one JSON object per image on stdout, in order.",
            discussion: """
                Each line is {"input", "labels": [{"label", "score"}]}, the labels in the order given and each score the model \
                family's probability (CLIP: a softmax across the labels, so an image's scores sum to 1), or {"input", "error": \
                {"code", "message"}} for an image that failed; the others are still classified and the exit status is then 1.
                """)

        @OptionGroup var options: ModelOptions
        @Option(name: .customLong("label"), help: "A label to score (repeatable).") var labels: [String] = []
        @Argument(help: "Image files.") var images: [String] = []

        func validate() throws {
            if labels.isEmpty { throw ValidationError("give at least one --label") }
            if images.isEmpty { throw ValidationError("give at least one image") }
        }

        func run() async throws {
            let embedder = try await Embedders.open(options.model, settings: .init(precision: options.precision, exactDecode: options.exactDecode))
            defer { Embedders.close(embedder) }
            guard let scoring = embedder.scoring else { throw CommandFailure("\(options.model) has no zero-shot classification") }
            let labelVectors: [[Float]]
            do {
                labelVectors = try await embedder.embed(texts: labels)
            } catch {
                throw CommandFailure("a label cannot be embedded: \(error)")
            }
            let decodes = DecodeGate(slots: 1, budgetBytes: 1 << 30)
            var failed = false
            for image in images {
                var fields = ["\"input\":\(JSONText.string(image))"]
                do {
                    let vector = try await embedder.embed(imageBytes: try ImageDecoder().readFile(at: image), decodes: decodes)
                    let scores = scoring.probabilities(image: vector, labels: labelVectors)
                    let entries = zip(labels, scores).map { "{\"label\":\(JSONText.string($0)),\"score\":\($1)}" }
                    fields.append("\"labels\":[\(entries.joined(separator: ","))]")
                } catch let error as ImageError {
                    failed = true
                    fields.append("\"error\":{\"code\":\(JSONText.string(error.code)),\"message\":\(JSONText.string(error.description))}")
                } catch let error as EmbeddingError {
                    failed = true
                    fields.append("\"error\":{\"code\":\(JSONText.string(error.code)),\"message\":\(JSONText.string(error.message))}")
                }
                StandardStreams.writeOut("{" + fields.joined(separator: ",") + "}\n")
            }
            if failed { throw ExitCode(1) }
        }
    }
}
