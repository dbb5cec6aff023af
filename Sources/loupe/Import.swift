import ArgumentParser
import Foundation
import ImageCollections
import Ingest

extension Loupe {
    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "import",
            abstract: "Load vectors computed elsewhere into a collection, under the model that made them.",
            discussion: """
                From a CSV/TSV with a column holding each vector as a JSON-style list (the file an Azure ingestion script \
                writes next to its dataset, or `loupe export`'s), or from a .npy matrix with its ids (FILE.ids.txt, or \
                --ids with a text file or a CSV/TSV in the same row order). --model names the embedder that made the \
                vectors (azure:URL, vertex:PROJECT/LOCATION or a local model), so that searches embed their queries \
                with it and vectors of different models never mix; no key is needed to import. Rows with the wrong \
                dimension, NaN or infinity, unreadable numbers or an id given more than once are listed in \
                DATA/<collection>-errors.tsv and not loaded. Running the same import again changes nothing.
                """)

        @Argument(help: "A .csv/.tsv file, or a .npy matrix.") var file: String
        @Option(help: "The collection to load into (created on first use).") var collection: String
        @Option(help: "The embedder that made the vectors.") var model: String
        @OptionGroup var remote: RemoteOptions
        @OptionGroup var store: StoreOptions
        @Option(help: "The column holding each item's id (default: IMAGE_FILE, file_name, id, else the first).") var idColumn: String?
        @Option(help: "The column holding each vector (default: vector or embedding, else the only list-valued one).") var vectorColumn: String?
        @Option(help: ".npy: the ids, one per line, or a CSV/TSV in row order (default: FILE.ids.txt).") var ids: String?
        @Option(help: "Rows per transaction.") var batch = 500

        func validate() throws {
            guard batch >= 1 else { throw ValidationError("--batch must be positive") }
        }

        func run() async throws {
            let url = URL(fileURLWithPath: (file as NSString).expandingTildeInPath)
            let identity = try await Embedders.identity(of: model, remote: remote)
            let rows: [ImportRow], problems: [SourceProblem]
            do {
                if url.pathExtension.lowercased() == "npy" {
                    let idFile = URL(fileURLWithPath: ((ids ?? url.path + ".ids.txt") as NSString).expandingTildeInPath)
                    (rows, problems) = try VectorFile.npy(file: url, ids: idFile, dimension: identity.dimension, idColumn: idColumn)
                } else {
                    (rows, problems) = try VectorFile.delimited(file: url, dimension: identity.dimension, idColumn: idColumn, vectorColumn: vectorColumn)
                }
            } catch let error as IngestSourceError {
                throw CommandFailure(error.description)
            }
            let store = try await store.open()
            let display = IngestDisplay()
            do {
                let summary = try await VectorImporter(store: store, identity: identity).run(rows, problems: problems, into: collection, batch: batch) {
                    display.show($0)
                }
                display.finish(summary.progress)
                try await store.flush()
                try ErrorReport.write(summary.problems, collection: collection, dataFolder: self.store.dataFolder)
            } catch let error as StoreError {
                throw CommandFailure(error.description)
            }
        }
    }
}
