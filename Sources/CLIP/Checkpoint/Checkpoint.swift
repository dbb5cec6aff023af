import Foundation
import Tensor

/// The tensors of a model folder's weights, in either format the Hub holds: `model.safetensors` (or its
/// shards), else PyTorch's `pytorch_model.bin` (or its shards), read without running its pickle.
/// Float32 tensors are used in place from the memory mapping where they are contiguous and aligned;
/// others (float16, bfloat16, strided views) are made float32 once, when first asked for.
final class Checkpoint: @unchecked Sendable {
    struct Entry {
        let file: MappedFile
        let dtype: String  // safetensors' names: F32, F16, BF16, I64, …
        let shape: [Int]
        let offset: Int  // from the start of the file
        let byteCount: Int
        /// Element strides of a view that is not contiguous (PyTorch only); nil when it is.
        var strides: [Int]? = nil
    }

    /// The weight files a folder can hold, in the order they are preferred.
    enum Format: CaseIterable {
        case safetensors, safetensorsShards, pytorch, pytorchShards

        var fileName: String {
            switch self {
            case .safetensors: "model.safetensors"
            case .safetensorsShards: "model.safetensors.index.json"
            case .pytorch: "pytorch_model.bin"
            case .pytorchShards: "pytorch_model.bin.index.json"
            }
        }
    }

    private(set) var entries: [String: Entry] = [:]
    private var widened: [String: UnsafeMutablePointer<Float>] = [:]
    private let lock = NSLock()

    /// Opens the first of `Format`'s files that `folder` has.
    init(folder: URL) throws {
        guard let format = Format.allCases.first(where: { FileManager.default.fileExists(atPath: folder.appendingPathComponent($0.fileName).path) })
        else { throw CLIPError.missingFile(folder.appendingPathComponent("model.safetensors (or pytorch_model.bin)").path) }
        let named = folder.appendingPathComponent(format.fileName)
        switch format {
        case .safetensors: try addSafeTensors(MappedFile(path: named.path))
        case .pytorch: try addPyTorch(MappedFile(path: named.path))
        case .safetensorsShards, .pytorchShards:
            for shard in try Self.shardNames(index: named) {
                let file = try MappedFile(path: folder.appendingPathComponent(shard).path)
                try format == .safetensorsShards ? addSafeTensors(file) : addPyTorch(file)
            }
        }
    }

    deinit { for pointer in widened.values { pointer.deallocate() } }

    private static func shardNames(index: URL) throws -> [String] {
        struct Index: Decodable { let weight_map: [String: String] }
        do {
            let names = try JSONDecoder().decode(Index.self, from: Data(contentsOf: index)).weight_map.values
            let unique = Set(names).sorted()
            // A shard name is a file in the model folder, never a path that leaves it.
            if let bad = unique.first(where: { $0.contains("/") || $0.hasPrefix(".") }) {
                throw CLIPError.invalidWeights(file: index.path, reason: "shard name \(bad) is not a plain file name")
            }
            return unique
        } catch let error as CLIPError {
            throw error
        } catch {
            throw CLIPError.invalidWeights(file: index.path, reason: "cannot read the shard index: \(error)")
        }
    }

    private func add(_ key: String, _ entry: Entry) throws {
        guard entries[key] == nil else { throw CLIPError.invalidWeights(file: entry.file.path, reason: "tensor \(key) appears in more than one file") }
        entries[key] = entry
    }

    static func elementSize(_ dtype: String) -> Int? {
        switch dtype {
        case "F32": 4
        case "F16", "BF16": 2
        case "I64": 8
        default: nil
        }
    }

    // MARK: - safetensors

    private func addSafeTensors(_ file: MappedFile) throws {
        func fail(_ reason: String) -> CLIPError { .invalidWeights(file: file.path, reason: reason) }
        let headerLength = Int(file.base.loadUnaligned(as: UInt64.self).littleEndian)
        guard headerLength > 0, headerLength <= file.size - 8, headerLength < 100_000_000 else {
            throw fail("header length \(headerLength) does not fit the file")
        }
        let headerData = Data(bytes: file.base + 8, count: headerLength)
        guard let header = try? JSONSerialization.jsonObject(with: headerData) as? [String: Any] else {
            throw fail("header is not a JSON object")
        }
        let dataStart = 8 + headerLength
        for (key, value) in header where key != "__metadata__" {
            guard let info = value as? [String: Any],
                let dtype = info["dtype"] as? String,
                let shape = (info["shape"] as? [Any])?.compactMap({ ($0 as? NSNumber)?.intValue }),
                let offsets = (info["data_offsets"] as? [Any])?.compactMap({ ($0 as? NSNumber)?.intValue }),
                offsets.count == 2
            else { throw fail("tensor \(key) has a malformed header entry") }
            guard shape.allSatisfy({ $0 >= 0 }) else { throw fail("tensor \(key) has a negative dimension") }
            let begin = offsets[0]
            let end = offsets[1]
            guard begin >= 0, end >= begin, dataStart + end <= file.size else {
                throw fail("tensor \(key) points outside the file")
            }
            // Other dtypes are refused when the model asks for the tensor, with its name.
            if let elementSize = Self.elementSize(dtype), shape.reduce(1, *) * elementSize != end - begin {
                throw fail("tensor \(key) has \(end - begin) bytes for shape \(shape)")
            }
            try add(key, Entry(file: file, dtype: dtype, shape: shape, offset: dataStart + begin, byteCount: end - begin))
        }
    }

    // MARK: - PyTorch

    /// A `torch.save` zip: `<name>/data.pkl` describes the state dict, `<name>/data/<key>` hold the storages.
    private func addPyTorch(_ file: MappedFile) throws {
        func fail(_ reason: String) -> CLIPError { .invalidWeights(file: file.path, reason: reason) }
        let archive: ZipArchive
        do {
            archive = try ZipArchive(file: file)
        } catch {
            throw fail("not a PyTorch zip checkpoint (files saved by PyTorch before 1.6 are not read; re-save them): \(error)")
        }
        let pickles = archive.entries.keys.filter { $0.hasSuffix("/data.pkl") && $0.split(separator: "/").count == 2 }
        guard pickles.count == 1, let pickle = archive.entries[pickles[0]] else { throw fail("the archive has no single data.pkl") }
        let prefix = String(pickle.name.dropLast("data.pkl".count))
        if let order = archive.entries[prefix + "byteorder"], order.method == 0,
            String(decoding: archive.bytes(of: order), as: UTF8.self) != "little"
        {
            throw fail("the checkpoint was saved on a big-endian machine")
        }
        guard pickle.method == 0 else { throw fail("data.pkl is compressed") }
        var unpickler = RestrictedUnpickler(archive.bytes(of: pickle), fail: fail)
        guard case .dict(let dictionary) = try unpickler.load() else { throw fail("the pickle is not a state dict") }
        for (key, value) in dictionary.items {
            guard case .string(let name) = key, case .tensor(let tensor) = value else {
                throw fail("the state dict holds something other than named tensors")
            }
            try add(name, entry(tensor, named: name, archive: archive, prefix: prefix, fail: fail))
        }
    }

    private func entry(_ tensor: TensorReference, named name: String, archive: ZipArchive, prefix: String,
                       fail: (String) -> CLIPError) throws -> Entry {
        let storage = tensor.storage
        guard let stored = archive.entries[prefix + "data/" + storage.key] else { throw fail("tensor \(name): storage \(storage.key) is missing") }
        guard stored.method == 0 else { throw fail("tensor \(name): storage \(storage.key) is compressed") }
        guard storage.count <= stored.size / storage.elementSize else {
            throw fail("tensor \(name): storage \(storage.key) holds \(stored.size) bytes, not \(storage.count) values")
        }
        guard tensor.offset >= 0, tensor.shape.allSatisfy({ $0 >= 0 }), tensor.strides.allSatisfy({ $0 >= 0 }) else {
            throw fail("tensor \(name) has a negative offset, size or stride")
        }
        // The last element the view reaches must lie in the storage (an empty view reaches none).
        var count = 1
        var last = tensor.offset
        for (size, stride) in zip(tensor.shape, tensor.strides) {
            let (product, overflow) = count.multipliedReportingOverflow(by: size)
            let (step, stepOverflow) = (max(size, 1) - 1).multipliedReportingOverflow(by: stride)
            guard !overflow, !stepOverflow, step <= Int.max - last else { throw fail("tensor \(name) has a size that overflows") }
            count = product
            last += step
        }
        guard count == 0 || last < storage.count else { throw fail("tensor \(name) reaches past its storage") }
        var contiguous = [Int](repeating: 1, count: tensor.shape.count)
        for axis in contiguous.indices.reversed().dropFirst() { contiguous[axis] = contiguous[axis + 1] * tensor.shape[axis + 1] }
        let isContiguous = zip(zip(tensor.shape, tensor.strides), contiguous).allSatisfy { $0.0 <= 1 || $0.1 == $1 }
        return Entry(file: archive.file, dtype: storage.dtype, shape: tensor.shape,
                     offset: stored.dataOffset + tensor.offset * storage.elementSize, byteCount: count * storage.elementSize,
                     strides: isContiguous ? nil : tensor.strides)
    }

    // MARK: - Weights as float32

    /// The tensor `key` as float32, checked against `shape`.
    func weight(_ key: String, shape: [Int]) throws -> WeightView {
        guard let entry = entries[key] else { throw CLIPError.missingWeight(key) }
        guard entry.shape == shape else { throw CLIPError.shapeMismatch(key: key, expected: shape, found: entry.shape) }
        let source = entry.file.base + entry.offset
        switch entry.dtype {
        case "F32" where entry.strides == nil && Int(bitPattern: source) % MemoryLayout<Float>.alignment == 0:
            return WeightView(base: source.assumingMemoryBound(to: Float.self), shape: shape)
        case "F32", "F16", "BF16":
            return WeightView(base: UnsafePointer(widen(key: key, entry: entry)), shape: shape)
        default:
            throw CLIPError.unsupportedDType(key: key, dtype: entry.dtype)
        }
    }

    /// Gives back the memory behind `key` once nothing reads it any more (its values were packed into
    /// a new layout): the float32 copy of a half-precision tensor is freed, and the mapped pages of a
    /// float32 one are dropped (they are clean pages of the file; nothing is lost).
    func release(_ key: String) {
        lock.lock()
        defer { lock.unlock() }
        if let copy = widened.removeValue(forKey: key) {
            copy.deallocate()
        } else if let entry = entries[key], entry.strides == nil {
            let page = Int(sysconf(Int32(_SC_PAGESIZE)))
            let start = Int(bitPattern: entry.file.base) + entry.offset
            let first = (start + page - 1) / page * page
            let end = (start + entry.byteCount) / page * page
            if end > first {
                madvise(UnsafeMutableRawPointer(bitPattern: first), end - first, Int32(MADV_DONTNEED))
            }
        }
    }

    private func widen(key: String, entry: Entry) -> UnsafeMutablePointer<Float> {
        lock.lock()
        defer { lock.unlock() }
        if let done = widened[key] { return done }
        let count = entry.shape.reduce(1, *)
        let target = UnsafeMutablePointer<Float>.allocate(capacity: count)
        let source = entry.file.base + entry.offset
        // Element i of the result, in row-major order, is element sourceIndex(i) of the stored view.
        var index = [Int](repeating: 0, count: entry.shape.count)
        var sourceIndex = 0
        for i in 0..<count {
            let element = entry.strides == nil ? i : sourceIndex
            switch entry.dtype {
            case "F16":
                target[i] = Float(Float16(bitPattern: source.loadUnaligned(fromByteOffset: 2 * element, as: UInt16.self).littleEndian))
            case "BF16":
                let bits = UInt32(source.loadUnaligned(fromByteOffset: 2 * element, as: UInt16.self).littleEndian) << 16
                target[i] = Float(bitPattern: bits)
            default:
                target[i] = Float(bitPattern: source.loadUnaligned(fromByteOffset: 4 * element, as: UInt32.self).littleEndian)
            }
            if let strides = entry.strides {
                for axis in index.indices.reversed() {
                    index[axis] += 1
                    sourceIndex += strides[axis]
                    if index[axis] < entry.shape[axis] { break }
                    sourceIndex -= strides[axis] * index[axis]
                    index[axis] = 0
                }
            }
        }
        widened[key] = target
        return target
    }
}
