import Foundation
import Tensor

/// A read-only memory mapping of a whole file; unmapped when the last reference goes.
final class MappedFile: @unchecked Sendable {
    let path: String
    let base: UnsafeRawPointer
    let size: Int

    init(path: String) throws {
        self.path = path
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { throw CLIPError.missingFile(path) }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw CLIPError.invalidWeights(file: path, reason: "cannot stat") }
        size = Int(status.st_size)
        guard size > 8 else { throw CLIPError.invalidWeights(file: path, reason: "file is \(size) bytes, too short") }
        guard let mapping = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0), mapping != MAP_FAILED else {
            throw CLIPError.invalidWeights(file: path, reason: "cannot memory-map the file")
        }
        base = UnsafeRawPointer(mapping)
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), size) }
}

/// The tensors of one or more `.safetensors` files. Float32 tensors are used in place from the
/// memory mapping; float16 and bfloat16 tensors are widened to float32 once, when first asked for.
final class SafeTensors: @unchecked Sendable {
    struct Entry {
        let file: MappedFile
        let dtype: String
        let shape: [Int]
        let offset: Int  // from the start of the file
        let byteCount: Int
    }

    private(set) var entries: [String: Entry] = [:]
    private var widened: [String: UnsafeMutablePointer<Float>] = [:]
    private let lock = NSLock()

    /// Opens `model.safetensors`, or every shard named by `model.safetensors.index.json`, in `folder`.
    init(folder: URL) throws {
        let single = folder.appendingPathComponent("model.safetensors")
        let index = folder.appendingPathComponent("model.safetensors.index.json")
        if FileManager.default.fileExists(atPath: single.path) {
            try add(file: MappedFile(path: single.path))
        } else if FileManager.default.fileExists(atPath: index.path) {
            for shard in try Self.shardNames(index: index) {
                try add(file: MappedFile(path: folder.appendingPathComponent(shard).path))
            }
        } else {
            throw CLIPError.missingFile(single.path)
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

    private func add(file: MappedFile) throws {
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
            let elementSize: Int
            switch dtype {
            case "F32": elementSize = 4
            case "F16", "BF16": elementSize = 2
            default: elementSize = 0  // refused when the model asks for it, with the key's name
            }
            if elementSize > 0 && shape.reduce(1, *) * elementSize != end - begin {
                throw fail("tensor \(key) has \(end - begin) bytes for shape \(shape)")
            }
            guard entries[key] == nil else { throw fail("tensor \(key) appears in more than one file") }
            entries[key] = Entry(file: file, dtype: dtype, shape: shape, offset: dataStart + begin, byteCount: end - begin)
        }
    }

    /// The tensor `key` as float32, checked against `shape`.
    func weight(_ key: String, shape: [Int]) throws -> WeightView {
        guard let entry = entries[key] else { throw CLIPError.missingWeight(key) }
        guard entry.shape == shape else { throw CLIPError.shapeMismatch(key: key, expected: shape, found: entry.shape) }
        let count = shape.reduce(1, *)
        let source = entry.file.base + entry.offset
        switch entry.dtype {
        case "F32" where Int(bitPattern: source) % MemoryLayout<Float>.alignment == 0:
            return WeightView(base: source.assumingMemoryBound(to: Float.self), shape: shape)
        case "F32", "F16", "BF16":
            return WeightView(base: UnsafePointer(widen(key: key, entry: entry, count: count)), shape: shape)
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
        } else if let entry = entries[key] {
            let page = Int(sysconf(Int32(_SC_PAGESIZE)))
            let start = Int(bitPattern: entry.file.base) + entry.offset
            let first = (start + page - 1) / page * page
            let end = (start + entry.byteCount) / page * page
            if end > first {
                madvise(UnsafeMutableRawPointer(bitPattern: first), end - first, Int32(MADV_DONTNEED))
            }
        }
    }

    private func widen(key: String, entry: Entry, count: Int) -> UnsafeMutablePointer<Float> {
        lock.lock()
        defer { lock.unlock() }
        if let done = widened[key] { return done }
        let target = UnsafeMutablePointer<Float>.allocate(capacity: count)
        let source = entry.file.base + entry.offset
        for i in 0..<count {
            switch entry.dtype {
            case "F16":
                target[i] = Float(Float16(bitPattern: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian))
            case "BF16":
                let bits = UInt32(source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian) << 16
                target[i] = Float(bitPattern: bits)
            default:
                target[i] = Float(bitPattern: source.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self).littleEndian)
            }
        }
        widened[key] = target
        return target
    }
}

/// Hands out weights by key and remembers which were taken, so that loading can refuse a checkpoint
/// with keys the model does not use.
final class WeightLoader {
    private let tensors: SafeTensors
    /// Weights derived at load time; the model keeps this alive.
    let storage = WeightStorage()
    private var used = Set<String>()
    /// Buffers some checkpoints carry that are not weights (HF stores `position_ids` in older files).
    private static let ignorable: Set<String> = [
        "text_model.embeddings.position_ids", "vision_model.embeddings.position_ids",
    ]

    /// The product kernel linear weights are prepared for.
    let kernel: ProductKernel

    init(_ tensors: SafeTensors, kernel: ProductKernel) {
        self.tensors = tensors
        self.kernel = kernel
    }

    func callAsFunction(_ key: String, _ shape: Int...) throws -> WeightView {
        used.insert(key)
        return try tensors.weight(key, shape: shape)
    }

    func shape(of key: String) -> [Int]? { tensors.entries[key]?.shape }

    /// A linear layer's weight made of `keys` stacked along the output dimension (q, k and v as one
    /// product), each [out, inFeatures]. When the weight is packed into its own buffer, the sources are
    /// released, so each weight is held in memory once.
    func linear(_ keys: [String], outFeatures: [Int], inFeatures: Int) throws -> LinearWeight {
        let parts = try zip(keys, outFeatures).map { key, out -> WeightView in
            used.insert(key)
            return try tensors.weight(key, shape: [out, inFeatures])
        }
        return prepared(parts, from: keys)
    }

    /// A convolution kernel [out, channels, height, width] whose stride equals its size, as the linear
    /// weight [out, channels · height · width] it is on image patches.
    func convolutionAsLinear(_ key: String, _ shape: [Int]) throws -> LinearWeight {
        used.insert(key)
        let kernel = try tensors.weight(key, shape: shape)
        return prepared([WeightView(base: kernel.base, shape: [shape[0], shape.dropFirst().reduce(1, *)])], from: [key])
    }

    private func prepared(_ parts: [WeightView], from keys: [String]) -> LinearWeight {
        let weight = LinearWeight(parts: parts, kernel: kernel)
        if weight.ownsValues { keys.forEach(tensors.release) }
        return weight
    }

    /// Biases (or other vectors) concatenated into one new buffer, owned by `storage`.
    func concatenated(_ keys: [String], count: Int) throws -> WeightView {
        let parts = try keys.map { key -> WeightView in
            used.insert(key)
            return try tensors.weight(key, shape: [count])
        }
        let fused = storage.concatenate(parts)
        keys.forEach(tensors.release)
        return fused
    }

    /// Throws when the checkpoint holds a tensor nobody asked for.
    func verifyAllUsed() throws {
        let unused = Set(tensors.entries.keys).subtracting(used).subtracting(Self.ignorable)
        if !unused.isEmpty { throw CLIPError.unexpectedWeights(unused.sorted()) }
    }
}
