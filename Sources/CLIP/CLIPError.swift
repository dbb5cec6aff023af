/// Everything that can go wrong while loading or running a CLIP model, each naming what it is about.
public enum CLIPError: Error, Equatable, CustomStringConvertible {
    case missingFile(String)
    case invalidConfiguration(String)
    case invalidWeights(file: String, reason: String)
    case unsupportedDType(key: String, dtype: String)
    case missingWeight(String)
    case unexpectedWeights([String])
    case shapeMismatch(key: String, expected: [Int], found: [Int])
    case invalidTokenizer(String)
    case emptyText
    case invalidImage(String)
    case unsupportedModelType(String, supported: [String])

    public var description: String {
        switch self {
        case .missingFile(let path): "model file not found: \(path)"
        case .unsupportedModelType(let type, let supported):
            "config.json's model_type is \(type), which Loupe does not run; it runs \(supported.joined(separator: ", "))"
        case .invalidConfiguration(let reason): "invalid model configuration: \(reason)"
        case .invalidWeights(let file, let reason): "invalid weights in \(file): \(reason)"
        case .unsupportedDType(let key, let dtype): "weight \(key) has unsupported dtype \(dtype) (expected F32, F16 or BF16)"
        case .missingWeight(let key): "weight \(key) is missing from the checkpoint"
        case .unexpectedWeights(let keys):
            "the checkpoint has weights this model does not use: \(keys.prefix(5).joined(separator: ", "))"
                + (keys.count > 5 ? " and \(keys.count - 5) more" : "")
        case .shapeMismatch(let key, let expected, let found): "weight \(key) has shape \(found), expected \(expected)"
        case .invalidTokenizer(let reason): "invalid tokenizer files: \(reason)"
        case .emptyText: "the text is empty"
        case .invalidImage(let reason): "invalid image: \(reason)"
        }
    }
}
