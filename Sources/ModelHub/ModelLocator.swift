import Foundation

/// Turns what a user passes as `--model` into a model folder: an existing folder is used as it is;
/// anything else is a Hub id, found in the cache or downloaded.
public struct ModelLocator: Sendable {
    public let downloader: HubDownloader

    public init(downloader: HubDownloader = HubDownloader(environment: .fromProcess())) { self.downloader = downloader }

    public func locate(_ model: String, progress: @escaping @Sendable (DownloadProgress) -> Void = { _ in }) async throws -> URL {
        var isFolder: ObjCBool = false
        let expanded = (model as NSString).expandingTildeInPath
        if FileManager.default.fileExists(atPath: expanded, isDirectory: &isFolder), isFolder.boolValue {
            return URL(fileURLWithPath: expanded)
        }
        // A path-like argument that does not exist is a mistyped folder, not a Hub id.
        if model.hasPrefix("/") || model.hasPrefix(".") || model.hasPrefix("~") {
            throw HubError.notAModel(model: model, reason: "there is no folder there")
        }
        return try await downloader.resolve(HubModelID(parsing: model), progress: progress)
    }
}
