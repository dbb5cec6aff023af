import ArgumentParser
import Foundation
import ModelHub

extension Loupe {
    struct Models: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List and download models in the Hugging Face cache.",
            subcommands: [List.self, Pull.self])

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Show the models in the Hugging Face cache.")

            func run() async throws {
                let environment = HubEnvironment.fromProcess()
                let entries = HubCache(root: environment.cacheRoot).entries()
                guard !entries.isEmpty else {
                    StandardStreams.writeOut("no models in \(environment.cacheRoot.path); `loupe models pull ORG/NAME` downloads one\n")
                    return
                }
                let rows = entries.map { entry in
                    [entry.repository, entry.revisions.joined(separator: ","), String(entry.commit.prefix(12)),
                     String(format: "%.1f MB", Double(entry.bytes) / 1_048_576), entry.complete ? "ready" : "incomplete"]
                }
                let header = ["MODEL", "REVISIONS", "COMMIT", "SIZE", "STATE"]
                let widths = (0..<header.count).map { column in ([header] + rows).map { $0[column].count }.max()! }
                for row in [header] + rows {
                    let line = zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
                    StandardStreams.writeOut(line.trimmingCharacters(in: .whitespaces) + "\n")
                }
            }
        }

        struct Pull: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Download a model from the Hub into the cache.")

            @Argument(help: "A Hub id: org/name or org/name@revision.") var id: String

            func run() async throws {
                let modelID: HubModelID
                do {
                    modelID = try HubModelID(parsing: id)
                } catch let error as HubError {
                    throw ValidationError(error.description)
                }
                let environment = HubEnvironment.fromProcess()
                if environment.offline { throw CommandFailure(HubError.notCached(model: id, offline: true).description) }
                let bar = ProgressBar()
                do {
                    let folder = try await HubDownloader(environment: environment).download(modelID) { bar.update($0) }
                    bar.finish()
                    StandardStreams.writeOut("\(modelID) is ready at \(folder.path)\n")
                } catch let error as HubError {
                    bar.finish()
                    throw CommandFailure(error.description)
                }
            }
        }
    }
}
