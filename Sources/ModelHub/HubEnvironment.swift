import Foundation

/// Where models come from: the Hugging Face cache folder, the Hub's address, a token, offline mode.
/// Read from the same environment variables `huggingface_hub` uses, so both share one cache.
public struct HubEnvironment: Sendable {
    /// `…/hub`, holding `models--org--name/{blobs,snapshots,refs}`.
    public var cacheRoot: URL
    public var endpoint: String
    public var token: String?
    public var offline: Bool

    public init(cacheRoot: URL, endpoint: String = "https://huggingface.co", token: String? = nil, offline: Bool = false) {
        self.cacheRoot = cacheRoot
        self.endpoint = endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint
        self.token = token
        self.offline = offline
    }

    /// `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`; `HF_ENDPOINT`; `HF_TOKEN`;
    /// `HF_HUB_OFFLINE=1`.
    public static func fromProcess(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> HubEnvironment {
        let home = environment["HOME"].map { URL(fileURLWithPath: $0) } ?? FileManager.default.homeDirectoryForCurrentUser
        let hfHome = environment["HF_HOME"].map { URL(fileURLWithPath: $0) }
            ?? environment["XDG_CACHE_HOME"].map { URL(fileURLWithPath: $0).appendingPathComponent("huggingface") }
            ?? home.appendingPathComponent(".cache/huggingface")
        let cache = environment["HF_HUB_CACHE"].map { URL(fileURLWithPath: $0) } ?? hfHome.appendingPathComponent("hub")
        let token = environment["HF_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (try? String(contentsOf: hfHome.appendingPathComponent("token"), encoding: .utf8))
                .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.flatMap { $0.isEmpty ? nil : $0 }
        let offline = ["1", "true", "yes", "on"].contains((environment["HF_HUB_OFFLINE"] ?? "").lowercased())
        return HubEnvironment(
            cacheRoot: cache, endpoint: environment["HF_ENDPOINT"] ?? "https://huggingface.co", token: token, offline: offline)
    }
}

/// A model on the Hub: `org/name`, optionally `@revision` (a branch, tag or commit; default `main`).
public struct HubModelID: Sendable, Equatable, CustomStringConvertible {
    public let repository: String
    public let revision: String

    public init(parsing text: String) throws {
        let parts = text.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let repository = parts[0]
        let revision = parts.count == 2 ? parts[1] : "main"
        let names = repository.split(separator: "/", omittingEmptySubsequences: false)
        let allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
        guard (1...2).contains(names.count),
            names.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." && $0.unicodeScalars.allSatisfy(allowed.contains) }),
            !revision.isEmpty, !revision.contains(".."), !revision.hasPrefix("/"),
            revision.unicodeScalars.allSatisfy({ allowed.contains($0) || $0 == "/" })
        else { throw HubError.invalidModelID(text) }
        self.repository = repository
        self.revision = revision
    }

    public var description: String { revision == "main" ? repository : "\(repository)@\(revision)" }

    /// `models--org--name`, the cache folder name `huggingface_hub` uses.
    var cacheFolderName: String { "models--" + repository.replacingOccurrences(of: "/", with: "--") }

    var revisionIsCommit: Bool { Self.isCommit(revision) }

    /// 40 lowercase hexadecimal digits: a git commit id as the Hub writes it.
    static func isCommit(_ text: String) -> Bool {
        text.utf8.count == 40 && text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    /// `refs/pr/N`, the revision of a pull request.
    static func isPullRequestRef(_ text: String) -> Bool {
        guard text.hasPrefix("refs/pr/") else { return false }
        let number = text.dropFirst("refs/pr/".count)
        return !number.isEmpty && number.count <= 9 && number.allSatisfy(\.isASCII) && number.allSatisfy(\.isNumber)
    }
}

public enum HubError: Error, Equatable, CustomStringConvertible {
    case invalidModelID(String)
    case notCached(model: String, offline: Bool)
    case unreachable(model: String, reason: String)
    case http(model: String, file: String, status: Int)
    case unauthorized(model: String)
    /// The repository asks users to accept its conditions on its page before it can be downloaded.
    case gated(model: String)
    /// No such repository, or a private one the token cannot see (the Hub answers both alike).
    case repositoryNotFound(model: String)
    case revisionNotFound(model: String)
    case notAModel(model: String, reason: String)
    case integrity(file: String, reason: String)
    case filesystem(String)

    public var description: String {
        let hint = "pass a local model folder instead (--model /path/to/folder with config.json, model.safetensors or pytorch_model.bin, vocab.json + merges.txt, tokenizer.json or spiece.model, preprocessor_config.json or processor_config.json)"
        switch self {
        case .invalidModelID(let text): return "\"\(text)\" is neither a model folder nor a Hub id like org/name or org/name@revision"
        case .notCached(let model, let offline):
            return "model \(model) is not in the Hugging Face cache" + (offline ? " and HF_HUB_OFFLINE is set" : "") + "; " + hint
        case .unreachable(let model, let reason): return "cannot reach the Hub to download \(model) (\(reason)); \(hint)"
        case .http(let model, let file, let status): return "the Hub answered \(status) for \(file) of \(model)"
        case .unauthorized(let model): return "the Hub refused access to \(model): set HF_TOKEN to a token that can read it"
        case .gated(let model):
            let repository = model.split(separator: "@").first.map(String.init) ?? model
            return "\(model) is gated: accept its conditions on https://huggingface.co/\(repository) and set HF_TOKEN to a token of that account"
        case .repositoryNotFound(let model):
            return "the Hub has no repository \(model) (or it is private and HF_TOKEN cannot read it)"
        case .revisionNotFound(let model): return "the Hub has no such revision: \(model)"
        case .notAModel(let model, let reason): return "\(model) is not a CLIP model in Hugging Face format: \(reason)"
        case .integrity(let file, let reason): return "downloaded \(file) failed its check: \(reason)"
        case .filesystem(let reason): return "cannot write to the model cache: \(reason)"
        }
    }
}
