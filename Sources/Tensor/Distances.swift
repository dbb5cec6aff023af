#if arch(x86_64)
import KernelsAVX2
import KernelsAVX512
#endif

/// Inner products of a float32 query with stored vectors (float32, float16 or int8 codes), built for the
/// widest vectors this processor runs, as the products are (`ProductKernel.best`): the metric of exact
/// and graph search.
public enum Distances {
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        switch ProductKernel.best {
        #if arch(x86_64)
        case .avx512: KernelsAVX512.Distances.dot(a, b, count: count)
        case .avx2: KernelsAVX2.Distances.dot(a, b, count: count)
        #endif
        default: VectorDistances.dot(a, b, count: count)
        }
    }

    /// `query · row` for `rowCount` rows of `count` values stored one after another, into `out`.
    public static func dots(_ query: UnsafePointer<Float>, _ rows: UnsafePointer<Float>, rowCount: Int, count: Int, into out: UnsafeMutablePointer<Float>) {
        switch ProductKernel.best {
        #if arch(x86_64)
        case .avx512: KernelsAVX512.Distances.dots(query, rows, rowCount: rowCount, count: count, into: out)
        case .avx2: KernelsAVX2.Distances.dots(query, rows, rowCount: rowCount, count: count, into: out)
        #endif
        default: VectorDistances.dots(query, rows, rowCount: rowCount, count: count, into: out)
        }
    }

    /// `query · rows[id]` for each of `count` ids (rows `stride` floats apart), into `out`, the start of
    /// every row prefetched before any is scored: a graph node's neighbours.
    public static func dots(
        _ query: UnsafePointer<Float>, _ base: UnsafePointer<Float>, stride: Int, dimension: Int, ids: UnsafePointer<Int32>, count: Int,
        into out: UnsafeMutablePointer<Float>
    ) {
        switch ProductKernel.best {
        #if arch(x86_64)
        case .avx512: KernelsAVX512.Distances.dots(query, base, stride: stride, dimension: dimension, ids: ids, count: count, into: out)
        case .avx2: KernelsAVX2.Distances.dots(query, base, stride: stride, dimension: dimension, ids: ids, count: count, into: out)
        #endif
        default: VectorDistances.dots(query, base, stride: stride, dimension: dimension, ids: ids, count: count, into: out)
        }
    }

    /// The same with float16 rows (`stride` in float16 values).
    public static func dots(
        _ query: UnsafePointer<Float>, _ base: UnsafePointer<Float16>, stride: Int, dimension: Int, ids: UnsafePointer<Int32>, count: Int,
        into out: UnsafeMutablePointer<Float>
    ) {
        switch ProductKernel.best {
        #if arch(x86_64)
        case .avx512: KernelsAVX512.Distances.dots(query, base, stride: stride, dimension: dimension, ids: ids, count: count, into: out)
        case .avx2: KernelsAVX2.Distances.dots(query, base, stride: stride, dimension: dimension, ids: ids, count: count, into: out)
        #endif
        default: VectorDistances.dots(query, base, stride: stride, dimension: dimension, ids: ids, count: count, into: out)
        }
    }

    public static func dot(_ query: UnsafePointer<Float>, _ row: UnsafePointer<Float16>, count: Int) -> Float {
        switch ProductKernel.best {
        #if arch(x86_64)
        case .avx512: KernelsAVX512.Distances.dot(query, row, count: count)
        case .avx2: KernelsAVX2.Distances.dot(query, row, count: count)
        #endif
        default: VectorDistances.dot(query, row, count: count)
        }
    }

    /// With the row as int8 codes: the caller multiplies by the row's scale.
    public static func dot(_ query: UnsafePointer<Float>, _ row: UnsafePointer<Int8>, count: Int) -> Float {
        switch ProductKernel.best {
        #if arch(x86_64)
        case .avx512: KernelsAVX512.Distances.dot(query, row, count: count)
        case .avx2: KernelsAVX2.Distances.dot(query, row, count: count)
        #endif
        default: VectorDistances.dot(query, row, count: count)
        }
    }

    /// float16 values widened to float32.
    public static func widen(_ half: UnsafePointer<Float16>, count: Int, into out: UnsafeMutablePointer<Float>) {
        switch ProductKernel.best {
        #if arch(x86_64)
        case .avx512: KernelsAVX512.Distances.widen(half, count: count, into: out)
        case .avx2: KernelsAVX2.Distances.widen(half, count: count, into: out)
        #endif
        default: VectorDistances.widen(half, count: count, into: out)
        }
    }

    /// Asks the memory system for the first cache lines at `address` (up to 256 bytes), so that a read
    /// soon after does not wait (nothing on processors without a kernel module).
    @inline(__always)
    public static func prefetch(_ address: UnsafeRawPointer, bytes: Int) {
        switch ProductKernel.best {
        #if arch(x86_64)
        case .avx512: KernelsAVX512.Distances.prefetch(address, bytes: bytes)
        case .avx2: KernelsAVX2.Distances.prefetch(address, bytes: bytes)
        #endif
        default: break
        }
    }
}
