// One source, compiled twice: as KernelsAVX512 (`-target-cpu skylake-avx512`, 16 lanes) and, through a
// symbolic link, as KernelsAVX2 (`-target-cpu haswell`, 8 lanes). Swift emits AVX and FMA instructions
// only for a module built for such a CPU, so each variant is its own module and `Tensor` picks one at
// run time from what the processor reports.
#if arch(x86_64)
import Builtin

#if LOUPE_AVX512
typealias Lanes = SIMD16<Float>
/// Two vectors of output features by six rows: 12 accumulators. Measured on AMD Zen 4 (which runs each
/// 512-bit operation as two 256-bit halves) against 4, 8, 10 and 12 rows and against 3 or 4 vectors
/// wide: 6 × 32 was fastest for every ViT-B/32 shape, 10–15 % ahead of 10 × 32 at batch size, and wastes
/// the least on a short text's five rows.
typealias Accumulators = InlineArray<12, Lanes>
let tileRows = 6
typealias PanelVectors = InlineArray<2, Lanes>
#else
typealias Lanes = SIMD8<Float>
/// Two vectors of output features by six rows: 12 accumulators, two weight vectors and one broadcast
/// fit the 16 vector registers (5 rows measured 2× slower: too few FMAs per instruction issued).
typealias Accumulators = InlineArray<12, Lanes>
let tileRows = 6
typealias PanelVectors = InlineArray<2, Lanes>
#endif
let panelVectors = PanelVectors.count

/// `output = input · weightᵀ (+ bias) (+ output)` with the weight pre-packed in panels of `panelWidth`
/// output features, each stored depth-major (`[inFeatures, panelWidth]`; `Tensor.LinearWeight` packs them).
public enum PackedProduct {
    /// Output features per packed panel.
    public static let panelWidth = panelVectors * Lanes.scalarCount
    /// Depth of one pass over several tiles of rows: one pass for the usual widths (the output is read
    /// and written once), four for the wide input of an MLP's second product. Measured against depths
    /// of 64 to 384. A single tile takes the whole depth in one pass.
    static let depthBlock = 768
    /// Panels per group: the group's [depthBlock, panelWidth] blocks (384 KB with AVX-512) stay in L2
    /// while every tile of rows passes over them.
    static let panelGroup = 4
    /// How far ahead of the micro-kernel the weights are asked for when they stream from memory once
    /// (a single tile of rows: a short text). Measured on Zen 4 with the text tower's products on five
    /// rows: 6–8 KB ahead 9–14 % faster when memory is fast, unchanged when it is slow; 4 KB no better
    /// than none. Without it the loop's many FMAs per cache line keep too few lines in flight.
    static let streamDistance = 6 << 10

    /// Computes the output columns of panels `panels` for all `rows` rows. `input` is row-major
    /// [rows, inFeatures], `output` row-major [rows, outFeatures]. With `accumulate`, the product is
    /// added to what `output` holds (a residual connection); `bias` is added either way.
    /// Different panel ranges touch different output columns, so threads may share one call's output.
    public static func multiply(
        _ input: UnsafePointer<Float>, rows: Int, inFeatures: Int,
        packed: UnsafePointer<Float>, outFeatures: Int, bias: UnsafePointer<Float>?,
        into output: UnsafeMutablePointer<Float>, accumulate: Bool, panels: Range<Int>
    ) {
        // The rows, copied for one depth block at a time as tiles of [depth, tileRows] (zero rows past
        // the end): the micro-kernel then reads its inputs in order, whatever the row stride of `input`.
        let tileCount = (rows + tileRows - 1) / tileRows
        // A single tile reads each weight once, straight from memory: its whole depth in one pass keeps
        // the thread's panels one contiguous stream, which `streamDistance` runs ahead of.
        let streaming = tileCount == 1
        let blockDepth = streaming ? inFeatures : depthBlock
        let tiles = UnsafeMutablePointer<Float>.allocate(capacity: tileCount * tileRows * min(blockDepth, inFeatures))
        defer { tiles.deallocate() }
        var k0 = 0
        while k0 < inFeatures {
            let depth = min(blockDepth, inFeatures - k0)
            for r in 0..<tileCount * tileRows {
                let target = tiles + (r / tileRows) * depth * tileRows + r % tileRows
                if r < rows {
                    let source = input + r * inFeatures + k0
                    for k in 0..<depth { target[k * tileRows] = source[k] }
                } else {
                    for k in 0..<depth { target[k * tileRows] = 0 }
                }
            }
            var groupStart = panels.lowerBound
            while groupStart < panels.upperBound {
                let group = groupStart..<min(groupStart + panelGroup, panels.upperBound)
                // A group's weights come from memory during its first tile and from L2 for the others.
                // While the other tiles run, each fetches a slice of the next group's blocks (in this
                // depth block, or the first group of the next one) into L2, so that the next first tile
                // does not wait for memory. Measured on Zen 4 with weights from memory: one-image
                // products 5–19 % faster, one image 47.6 against 54 ms, batch 32 unchanged.
                let (nextK0, nextGroup) = group.upperBound < panels.upperBound
                    ? (k0, group.upperBound..<min(group.upperBound + panelGroup, panels.upperBound))
                    : (k0 + depth, panels.lowerBound..<min(panels.lowerBound + panelGroup, panels.upperBound))
                let nextDepth = min(blockDepth, inFeatures - nextK0)
                // Bytes per step of the depth loop so that the tiles after the first cover a next block.
                let passes = (tileCount - 1) * depth
                let step = passes > 0 && nextK0 < inFeatures ? (nextDepth * panelWidth * 4 + passes - 1) / passes : 0
                for t in 0..<tileCount {
                    for panel in group {
                        let firstColumn = panel * panelWidth
                        var sums = Accumulators(repeating: Lanes())
                        let input = tiles + t * depth * tileRows
                        let weights = packed + (panel * inFeatures + k0) * panelWidth
                        let height = min(tileRows, rows - t * tileRows)
                        let nextPanel = nextGroup.lowerBound + panel - group.lowerBound
                        let ahead: Ahead
                        if streaming {
                            ahead = .stream
                        } else if t > 0, step > 0, nextGroup.contains(nextPanel) {
                            let block = UnsafeRawPointer(packed + (nextPanel * inFeatures + nextK0) * panelWidth)
                            ahead = .slice(block + (t - 1) * depth * step, step: step)
                        } else {
                            ahead = .none
                        }
                        // The last tile computes only the rows there are (50 rows are 8 tiles of 6 and one
                        // of 2, not 54 rows); each height is a constant in its own copy of the loop, so
                        // the accumulators stay in registers (both builds have tiles of 6 rows).
                        switch height {
                        case 1: tile(input, weights: weights, depth: depth, rows: 1, ahead: ahead, into: &sums)
                        case 2: tile(input, weights: weights, depth: depth, rows: 2, ahead: ahead, into: &sums)
                        case 3: tile(input, weights: weights, depth: depth, rows: 3, ahead: ahead, into: &sums)
                        case 4: tile(input, weights: weights, depth: depth, rows: 4, ahead: ahead, into: &sums)
                        case 5: tile(input, weights: weights, depth: depth, rows: 5, ahead: ahead, into: &sums)
                        default: tile(input, weights: weights, depth: depth, rows: tileRows, ahead: ahead, into: &sums)
                        }
                        store(
                            sums, rows: height,
                            output: output + t * tileRows * outFeatures + firstColumn,
                            stride: outFeatures, columns: min(panelWidth, outFeatures - firstColumn),
                            bias: k0 == 0 ? bias.map { $0 + firstColumn } : nil, add: accumulate || k0 > 0)
                    }
                }
                groupStart = group.upperBound
            }
            k0 += depth
        }
    }

    /// What the micro-kernel asks for besides its own weights.
    enum Ahead {
        /// Nothing more (the weights are in L2).
        case none
        /// The L2 line at `start + k · step` at step k: a slice of the next panel group.
        case slice(UnsafeRawPointer, step: Int)
        /// Its own weights, `streamDistance` ahead and not from L2: they come from memory.
        case stream
    }

    /// The micro-kernel: the first `rows` rows of a tile (packed [depth, tileRows]) times one panel over
    /// `depth`, in registers. Called with constant `rows` only.
    @inline(__always)
    static func tile(
        _ input: UnsafePointer<Float>, weights: UnsafePointer<Float>, depth: Int, rows: Int,
        ahead: Ahead, into sums: inout Accumulators
    ) {
        let raw = UnsafeRawPointer(weights)
        let stepBytes = panelWidth * MemoryLayout<Float>.size
        for k in 0..<depth {
            switch ahead {
            case .stream:
                for line in stride(from: 0, to: stepBytes, by: 64) { prefetchToL2(raw + k * stepBytes + streamDistance + line) }
            case .slice(let start, let step):
                prefetchToL2(start + k * step)
                fallthrough
            case .none:
                // The weights stream from L2: asking for them eight steps ahead measured 3–8 % faster
                // than leaving it to the hardware (4 and 16 steps were no better).
                prefetch(raw + (k + 8) * stepBytes)
                prefetch(raw + (k + 8) * stepBytes + 64)
            }
            var w = PanelVectors(repeating: Lanes())
            for v in 0..<panelVectors {
                w[v] = raw.loadUnaligned(fromByteOffset: (k * panelWidth + v * Lanes.scalarCount) * 4, as: Lanes.self)
            }
            let a = input + k * tileRows
            for r in 0..<rows {
                let broadcast = Lanes(repeating: a[r])
                for v in 0..<panelVectors { sums[panelVectors * r + v].addProduct(broadcast, w[v]) }
            }
        }
    }

    /// `prefetcht0`: Swift has no name for it, so the LLVM intrinsic is called through the Builtin module.
    /// A prefetch never faults, so reading past the end of the panel is harmless.
    @inline(__always)
    static func prefetch(_ address: UnsafeRawPointer) {
        Builtin.int_prefetch_RawPointer(address._rawValue, Int32(0)._value, Int32(3)._value, Int32(1)._value)
    }

    /// `prefetcht1`: a line wanted thousands of steps later, asked for at the L2 level.
    @inline(__always)
    static func prefetchToL2(_ address: UnsafeRawPointer) {
        Builtin.int_prefetch_RawPointer(address._rawValue, Int32(0)._value, Int32(2)._value, Int32(1)._value)
    }

    @inline(__always)
    static func store(
        _ sums: Accumulators, rows: Int, output: UnsafeMutablePointer<Float>, stride: Int, columns: Int,
        bias: UnsafePointer<Float>?, add: Bool
    ) {
        for r in 0..<rows {
            for v in 0..<panelVectors {
                var value = sums[panelVectors * r + v]
                let offset = v * Lanes.scalarCount
                let target = output + r * stride + offset
                let count = min(Lanes.scalarCount, columns - offset)
                if count == Lanes.scalarCount {
                    if let bias { value += UnsafeRawPointer(bias + offset).loadUnaligned(as: Lanes.self) }
                    if add { value += UnsafeRawPointer(target).loadUnaligned(as: Lanes.self) }
                    UnsafeMutableRawPointer(target).storeBytes(of: value, as: Lanes.self)
                } else if count > 0 {
                    for i in 0..<count {
                        target[i] = value[i] + (bias?[offset + i] ?? 0) + (add ? target[i] : 0)
                    }
                }
            }
        }
    }
}

/// Element-wise functions on this module's vectors (the code is in VectorMath.swift).
public enum ElementWise {
    public static func quickGELU(_ values: UnsafeMutablePointer<Float>, count: Int) {
        VectorMath.quickGELU(values, count: count)
    }

    public static func geluTanh(_ values: UnsafeMutablePointer<Float>, count: Int) {
        VectorMath.geluTanh(values, count: count)
    }

    public static func softmaxRows(_ data: UnsafeMutablePointer<Float>, rows: Int, columns: Int, causal: Bool) {
        VectorMath.softmaxRows(data, rows: rows, columns: columns, causal: causal)
    }
}

/// Inner products on this module's vectors (the code is in VectorDistances.swift).
public enum Distances {
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        VectorDistances.dot(a, b, count: count)
    }

    public static func dots(_ query: UnsafePointer<Float>, _ rows: UnsafePointer<Float>, rowCount: Int, count: Int, into out: UnsafeMutablePointer<Float>) {
        VectorDistances.dots(query, rows, rowCount: rowCount, count: count, into: out)
    }

    public static func dots(
        _ query: UnsafePointer<Float>, _ base: UnsafePointer<Float>, stride: Int, dimension: Int, ids: UnsafePointer<Int32>, count: Int,
        into out: UnsafeMutablePointer<Float>
    ) {
        VectorDistances.dots(query, base, stride: stride, dimension: dimension, ids: ids, count: count, into: out)
    }

    public static func dots(
        _ query: UnsafePointer<Float>, _ base: UnsafePointer<Float16>, stride: Int, dimension: Int, ids: UnsafePointer<Int32>, count: Int,
        into out: UnsafeMutablePointer<Float>
    ) {
        VectorDistances.dots(query, base, stride: stride, dimension: dimension, ids: ids, count: count, into: out)
    }

    public static func dot(_ query: UnsafePointer<Float>, _ row: UnsafePointer<Float16>, count: Int) -> Float {
        VectorDistances.dot(query, row, count: count)
    }

    public static func dot(_ query: UnsafePointer<Float>, _ row: UnsafePointer<Int8>, count: Int) -> Float {
        VectorDistances.dot(query, row, count: count)
    }

    public static func widen(_ half: UnsafePointer<Float16>, count: Int, into out: UnsafeMutablePointer<Float>) {
        VectorDistances.widen(half, count: count, into: out)
    }

    public static func prefetch(_ address: UnsafeRawPointer, bytes: Int) {
        VectorDistances.prefetchRow(address, bytes: bytes)
    }
}

#endif
