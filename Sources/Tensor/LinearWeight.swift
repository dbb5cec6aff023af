import CAllocator
import CBLAS
import Foundation

#if arch(x86_64)
import KernelsAVX2
import KernelsAVX512
import KernelsVNNI
#endif

/// The code that multiplies activations by a linear layer's weight. The Swift kernels are compiled for
/// one instruction set each and used only when the processor has it; OpenBLAS works everywhere.
/// All but `int8` compute in float32; `int8` rounds weights and activations to 8 bits (faster, and
/// close to float32 but not equal: only chosen when asked for).
public enum ProductKernel: String, Sendable, CaseIterable {
    case avx512, avx2, blas
    case int8 = "int8-vnni"

    /// The fastest float32 kernel this processor runs; `LOUPE_KERNEL=blas|avx2|avx512` chooses another
    /// float32 kernel (for benchmarks and comparisons), if the processor runs it.
    public static let best: ProductKernel = {
        if let name = ProcessInfo.processInfo.environment["LOUPE_KERNEL"], let chosen = ProductKernel(rawValue: name),
            chosen.isSupported, chosen.isFloat32
        {
            return chosen
        }
        return allCases.first { $0.isSupported && $0.isFloat32 } ?? .blas
    }()

    /// Whether results equal float32 arithmetic (up to the order of additions).
    public var isFloat32: Bool { self != .int8 }

    public var isSupported: Bool {
        switch self {
        case .blas: return true
        #if arch(x86_64)
        case .avx512: return CPUFeatures.has("avx512f")
        case .avx2: return CPUFeatures.has("avx2") && CPUFeatures.has("fma")
        case .int8: return CPUFeatures.has("avx512bw") && CPUFeatures.has("avx512_vnni")
        #else
        case .avx512, .avx2, .int8: return false
        #endif
        }
    }

    /// Output features per packed panel (0 for BLAS, which takes the weight as it is).
    var panelWidth: Int {
        switch self {
        #if arch(x86_64)
        case .avx512: return KernelsAVX512.PackedProduct.panelWidth
        case .avx2: return KernelsAVX2.PackedProduct.panelWidth
        case .int8: return KernelsVNNI.Int8Product.panelWidth
        #endif
        default: return 0
        }
    }
}

/// What the processor reports it can run (Linux `/proc/cpuinfo`, macOS `sysctl`). The kernel hides
/// features the operating system does not save on a context switch, so listed means usable.
enum CPUFeatures {
    static func has(_ feature: String) -> Bool { names.contains(feature) }

    private static let names: Set<String> = {
        #if os(Linux)
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") })
        else { return [] }
        return Set(line.split(separator: ":").last?.split(separator: " ").map(String.init) ?? [])
        #elseif os(macOS)
        let sysctlNames = ["avx512f": "hw.optional.avx512f", "avx2": "hw.optional.avx2_0", "fma": "hw.optional.fma"]
        return Set(sysctlNames.compactMap { feature, key in
            var value: Int32 = 0
            var size = MemoryLayout<Int32>.size
            return sysctlbyname(key, &value, &size, nil, 0) == 0 && value != 0 ? feature : nil
        })
        #else
        return []
        #endif
    }()
}

/// A linear layer's [outFeatures, inFeatures] weight, prepared once for `kernel`: packed into panels for
/// the Swift kernels (one copy; the caller may then drop the source), or kept as it is for BLAS.
public final class LinearWeight: @unchecked Sendable {
    public let outFeatures: Int
    public let inFeatures: Int
    public let kernel: ProductKernel
    /// The weight for BLAS, row-major; the packed panels for the float32 kernels (unused for `int8`).
    let values: UnsafePointer<Float>
    /// For `int8`: the packed bytes, and one scale and one sum of quantised values per output feature.
    let quantized: (bytes: UnsafePointer<Int8>, scales: UnsafePointer<Float>, sums: UnsafePointer<Float>)?
    private let owned: WeightMemory?

    /// The weight made of `parts` stacked along the output dimension (q, k and v as one product).
    public init(parts: [WeightView], kernel: ProductKernel = .best) {
        ComputeThreads.configured
        precondition(!parts.isEmpty && parts.allSatisfy { $0.shape.count == 2 && $0.shape[1] == parts[0].shape[1] },
                     "linear weight parts differ in width")
        inFeatures = parts[0].shape[1]
        outFeatures = parts.reduce(0) { $0 + $1.shape[0] }
        self.kernel = kernel
        // The source row of each output feature.
        var rows = [UnsafePointer<Float>]()
        rows.reserveCapacity(outFeatures)
        for part in parts {
            for row in 0..<part.shape[0] { rows.append(part.base + row * inFeatures) }
        }
        let width = kernel.panelWidth
        #if arch(x86_64)
        if kernel == .int8 {
            let padded = (outFeatures + width - 1) / width * width
            let byteCount = Int8Product.packedByteCount(outFeatures: outFeatures, inFeatures: inFeatures)
            let memory = WeightMemory(byteCount: 8 * padded + byteCount)
            let buffer = memory.start
            let scales = buffer.bindMemory(to: Float.self, capacity: 2 * padded)
            let bytes = (buffer + 8 * padded).bindMemory(to: Int8.self, capacity: byteCount)
            Int8Product.pack(rows: rows, inFeatures: inFeatures, into: bytes, scales: scales, columnSums: scales + padded)
            quantized = (UnsafePointer(bytes), UnsafePointer(scales), UnsafePointer(scales + padded))
            values = UnsafePointer(scales)
            owned = memory
            return
        }
        #endif
        quantized = nil
        if width == 0, parts.count == 1 {
            values = parts[0].base
            owned = nil
            return
        }
        let count = width == 0
            ? outFeatures * inFeatures : (outFeatures + width - 1) / width * width * inFeatures
        let memory = WeightMemory(byteCount: count * 4)
        let target = memory.start.bindMemory(to: Float.self, capacity: count)
        if width == 0 {
            for (feature, row) in rows.enumerated() { (target + feature * inFeatures).update(from: row, count: inFeatures) }
        } else {
            Self.pack(rows: rows, inFeatures: inFeatures, panelWidth: width, into: target)
        }
        values = UnsafePointer(target)
        owned = memory
    }

    public convenience init(_ weight: WeightView, kernel: ProductKernel = .best) {
        self.init(parts: [weight], kernel: kernel)
    }

    deinit { owned?.free() }

    /// `output (+)= input · weightᵀ + bias` for `rows` rows; `accumulate` keeps what `output` holds.
    func multiply(
        _ input: UnsafePointer<Float>, rows: Int, bias: UnsafePointer<Float>?,
        into output: UnsafeMutablePointer<Float>, accumulate: Bool
    ) {
        // A kernel without panels (BLAS, or a Swift kernel on a processor family it is not built for)
        // holds the weight row-major.
        if kernel.panelWidth == 0 {
            blasMultiply(input, rows: rows, bias: bias, into: output, accumulate: accumulate)
        } else {
            packedMultiply(input, rows: rows, bias: bias, into: output, accumulate: accumulate)
        }
    }

    /// The bytes one product reads from the weight (packed panels, 8-bit values and their scales, or
    /// the float32 matrix).
    public var byteCount: Int { owned?.byteCount ?? outFeatures * inFeatures * MemoryLayout<Float>.size }

    /// True when the source weights are no longer read (packed or copied).
    public var ownsValues: Bool { owned != nil }

    /// Panels of `panelWidth` output features, each depth-major ([inFeatures, panelWidth]), the last
    /// one padded with zeros. Reads `panelWidth` source rows at once and writes the panel in order.
    private static func pack(
        rows: [UnsafePointer<Float>], inFeatures: Int, panelWidth: Int, into target: UnsafeMutablePointer<Float>
    ) {
        let panels = (rows.count + panelWidth - 1) / panelWidth
        for panel in 0..<panels {
            let panelRows = (0..<panelWidth).map { column -> UnsafePointer<Float>? in
                let feature = panel * panelWidth + column
                return feature < rows.count ? rows[feature] : nil
            }
            var out = target + panel * inFeatures * panelWidth
            for k in 0..<inFeatures {
                for column in 0..<panelWidth { out[column] = panelRows[column]?[k] ?? 0 }
                out += panelWidth
            }
        }
    }

    /// The Swift kernels, on every thread: each takes a share of the rows (many rows) or of the panels.
    private func packedMultiply(
        _ input: UnsafePointer<Float>, rows: Int, bias: UnsafePointer<Float>?,
        into output: UnsafeMutablePointer<Float>, accumulate: Bool
    ) {
        let panels = (outFeatures + kernel.panelWidth - 1) / kernel.panelWidth
        // Many rows (a batch of images): the rows are cut into four parts per thread, each part with
        // every panel, so no row is copied twice; threads take parts as they finish, and one slowed
        // down by the machine does not hold the other up (batch 32 2–7 % faster than one part per
        // thread, binaries alternating; eight were no better). Few rows: each thread takes a share of
        // the panels.
        let byRows = rows >= 64 * ComputeThreads.count
        let parts = byRows ? 4 * ComputeThreads.count : max(1, min(ComputeThreads.count, panels))
        // Addresses, not pointers, cross into the concurrent closure (pointers are not Sendable).
        let addresses = (Int(bitPattern: input), Int(bitPattern: output), bias.map { Int(bitPattern: $0) })
        ComputeThreads.parallel(parts) { part in
            var input = UnsafePointer<Float>(bitPattern: addresses.0)!
            var output = UnsafeMutablePointer<Float>(bitPattern: addresses.1)!
            let bias = addresses.2.flatMap { UnsafePointer<Float>(bitPattern: $0) }
            var rows = rows
            var range = 0..<panels
            if byRows {
                let share = ComputeThreads.share(part, of: parts, count: rows)
                rows = share.count
                input += share.lowerBound * inFeatures
                output += share.lowerBound * outFeatures
            } else {
                range = ComputeThreads.share(part, of: parts, count: panels)
            }
            #if arch(x86_64)
            switch kernel {
            case .avx512:
                KernelsAVX512.PackedProduct.multiply(
                    input, rows: rows, inFeatures: inFeatures, packed: values, outFeatures: outFeatures,
                    bias: bias, into: output, accumulate: accumulate, panels: range)
            case .avx2:
                KernelsAVX2.PackedProduct.multiply(
                    input, rows: rows, inFeatures: inFeatures, packed: values, outFeatures: outFeatures,
                    bias: bias, into: output, accumulate: accumulate, panels: range)
            case .int8:
                guard let (bytes, scales, sums) = quantized else { return }  // always set for .int8
                Int8Product.multiply(
                    input, rows: rows, inFeatures: inFeatures, packed: bytes, scales: scales, columnSums: sums,
                    outFeatures: outFeatures, bias: bias, into: output, accumulate: accumulate, panels: range)
            case .blas:
                break  // `multiply` gives BLAS weights to `blasMultiply`
            }
            #endif
        }
    }

    private func blasMultiply(
        _ input: UnsafePointer<Float>, rows: Int, bias: UnsafePointer<Float>?,
        into output: UnsafeMutablePointer<Float>, accumulate: Bool
    ) {
        if let bias {
            for row in 0..<rows {
                let target = output + row * outFeatures
                if accumulate {
                    for j in 0..<outFeatures { target[j] += bias[j] }
                } else {
                    target.update(from: bias, count: outFeatures)
                }
            }
        }
        cblas_sgemm(
            CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(outFeatures), Int32(inFeatures),
            1, input, Int32(inFeatures), values, Int32(inFeatures),
            bias == nil && !accumulate ? 0 : 1, output, Int32(outFeatures))
    }
}

/// A packed weight's memory: in 2 MB pages where the system gives them (see `loupe_allocate_weights`),
/// else from the Swift allocator.
private struct WeightMemory {
    let start: UnsafeMutableRawPointer
    let byteCount: Int
    let mapped: Bool

    init(byteCount: Int) {
        self.byteCount = byteCount
        if let pages = loupe_allocate_weights(byteCount) {
            (start, mapped) = (pages, true)
        } else {
            (start, mapped) = (UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: 64), false)
        }
    }

    func free() {
        if mapped { loupe_free_weights(start, byteCount) } else { start.deallocate() }
    }
}
