import Crypto
import Foundation
import ImageCollections

/// Identifies the model a collection was made with.
public enum ModelFingerprint {
    /// A Hub snapshot is named by its commit; a local folder by a hash of its configuration and the
    /// weights' header (names, shapes, offsets; a PyTorch file's first megabyte), which changes whenever
    /// the weights do in practice.
    public static func identity(of folder: URL, name: String, dimension: Int) -> ModelIdentity {
        let components = folder.standardizedFileURL.pathComponents
        if let index = components.lastIndex(of: "snapshots"), index + 1 < components.count {
            let commit = components[index + 1]
            if commit.count == 40, commit.allSatisfy(\.isHexDigit) { return ModelIdentity(id: name, revision: commit, dimension: dimension) }
        }
        var hasher = SHA256()
        for file in ["config.json", "preprocessor_config.json", "model.safetensors.index.json", "pytorch_model.bin.index.json"] {
            if let data = FileManager.default.contents(atPath: folder.appendingPathComponent(file).path) { hasher.update(data: data) }
        }
        // The start of the weights (safetensors' header; a PyTorch zip's pickle) and their size.
        for file in ["model.safetensors", "pytorch_model.bin"] {
            guard let handle = FileHandle(forReadingAtPath: folder.appendingPathComponent(file).path) else { continue }
            let header = (try? handle.read(upToCount: 1 << 20)) ?? Data()
            hasher.update(data: header)
            if let size = try? handle.seekToEnd() { hasher.update(data: Data(String(size).utf8)) }
            try? handle.close()
            break
        }
        let digest = hasher.finalize().map { String(format: "%02x", $0) }.joined()
        return ModelIdentity(id: name, revision: "sha256:" + digest, dimension: dimension)
    }
}
