// One source, compiled into Tensor (for any processor) and, through symbolic links, into KernelsAVX2
// and KernelsAVX512 (see VectorMath.swift): inner products of a float32 query with stored vectors in
// float32, float16 or int8, the distances of exact and graph search.

#if LOUPE_BUILTINS
import Builtin
#endif

#if LOUPE_AVX512
typealias HalfLanes = SIMD16<Float16>
typealias ByteLanes = SIMD16<Int8>
typealias WordLanes = SIMD16<Int32>
#else
typealias HalfLanes = SIMD8<Float16>
typealias ByteLanes = SIMD8<Int8>
typealias WordLanes = SIMD8<Int32>
#endif

/// Inner products, `Lanes.scalarCount` products per instruction and four independent sums, so that the
/// additions' latency hides behind the loads.
enum VectorDistances {
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        let width = Lanes.scalarCount
        var s0 = Lanes(), s1 = Lanes(), s2 = Lanes(), s3 = Lanes()
        let rawA = UnsafeRawPointer(a), rawB = UnsafeRawPointer(b)
        var i = 0
        while i + 4 * width <= count {
            s0 += rawA.loadUnaligned(fromByteOffset: 4 * i, as: Lanes.self) * rawB.loadUnaligned(fromByteOffset: 4 * i, as: Lanes.self)
            s1 += rawA.loadUnaligned(fromByteOffset: 4 * (i + width), as: Lanes.self) * rawB.loadUnaligned(fromByteOffset: 4 * (i + width), as: Lanes.self)
            s2 += rawA.loadUnaligned(fromByteOffset: 4 * (i + 2 * width), as: Lanes.self)
                * rawB.loadUnaligned(fromByteOffset: 4 * (i + 2 * width), as: Lanes.self)
            s3 += rawA.loadUnaligned(fromByteOffset: 4 * (i + 3 * width), as: Lanes.self)
                * rawB.loadUnaligned(fromByteOffset: 4 * (i + 3 * width), as: Lanes.self)
            i += 4 * width
        }
        while i + width <= count {
            s0 += rawA.loadUnaligned(fromByteOffset: 4 * i, as: Lanes.self) * rawB.loadUnaligned(fromByteOffset: 4 * i, as: Lanes.self)
            i += width
        }
        var sum = ((s0 + s1) + (s2 + s3)).sum()
        while i < count {
            sum += a[i] * b[i]
            i += 1
        }
        return sum
    }

    /// `query · row` for each of `rows` rows stored one after another (`count` values each), into `out`.
    static func dots(_ query: UnsafePointer<Float>, _ rows: UnsafePointer<Float>, rowCount: Int, count: Int, into out: UnsafeMutablePointer<Float>) {
        for row in 0..<rowCount { out[row] = dot(query, rows + row * count, count: count) }
    }

    /// `query · rows[id]` for each of `count` ids (rows of `dimension` values, `stride` apart), into `out`:
    /// the neighbours of a graph node, scattered in memory, so the start of every row is asked for before
    /// any is scored.
    static func dots(
        _ query: UnsafePointer<Float>, _ base: UnsafePointer<Float>, stride: Int, dimension: Int, ids: UnsafePointer<Int32>, count: Int,
        into out: UnsafeMutablePointer<Float>
    ) {
        guard count > 0 else { return }
        let rowBytes = dimension * 4
        // The start of every row first, so that their misses overlap; the hardware streams the rest of each.
        for index in 0..<count { prefetchRow(base + Int(ids[index]) * stride, bytes: rowBytes) }
        // Four rows at a time, as FAISS does: each query vector loaded once, four independent sums.
        var index = 0
        while index + 4 <= count {
            let sums = dot4(query, base + Int(ids[index]) * stride, base + Int(ids[index + 1]) * stride, base + Int(ids[index + 2]) * stride,
                            base + Int(ids[index + 3]) * stride, count: dimension)
            out[index] = sums.0
            out[index + 1] = sums.1
            out[index + 2] = sums.2
            out[index + 3] = sums.3
            index += 4
        }
        while index < count {
            out[index] = dot(query, base + Int(ids[index]) * stride, count: dimension)
            index += 1
        }
    }

    /// `query` against four rows in one pass.
    @inline(__always)
    static func dot4(
        _ query: UnsafePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafePointer<Float>,
        _ d: UnsafePointer<Float>, count: Int
    ) -> (Float, Float, Float, Float) {
        let width = Lanes.scalarCount
        var sa = Lanes(), sb = Lanes(), sc = Lanes(), sd = Lanes()
        let q = UnsafeRawPointer(query)
        let (ra, rb, rc, rd) = (UnsafeRawPointer(a), UnsafeRawPointer(b), UnsafeRawPointer(c), UnsafeRawPointer(d))
        var i = 0
        while i + width <= count {
            let x = q.loadUnaligned(fromByteOffset: 4 * i, as: Lanes.self)
            sa += x * ra.loadUnaligned(fromByteOffset: 4 * i, as: Lanes.self)
            sb += x * rb.loadUnaligned(fromByteOffset: 4 * i, as: Lanes.self)
            sc += x * rc.loadUnaligned(fromByteOffset: 4 * i, as: Lanes.self)
            sd += x * rd.loadUnaligned(fromByteOffset: 4 * i, as: Lanes.self)
            i += width
        }
        var result = (sa.sum(), sb.sum(), sc.sum(), sd.sum())
        while i < count {
            result.0 += query[i] * a[i]
            result.1 += query[i] * b[i]
            result.2 += query[i] * c[i]
            result.3 += query[i] * d[i]
            i += 1
        }
        return result
    }

    /// The same with float16 rows (`stride` in float16 values): a graph kept in half the memory.
    static func dots(
        _ query: UnsafePointer<Float>, _ base: UnsafePointer<Float16>, stride: Int, dimension: Int, ids: UnsafePointer<Int32>, count: Int,
        into out: UnsafeMutablePointer<Float>
    ) {
        for index in 0..<count { prefetchRow(base + Int(ids[index]) * stride, bytes: dimension * 2) }
        for index in 0..<count { out[index] = dot(query, base + Int(ids[index]) * stride, count: dimension) }
    }

    /// Asks for the first cache lines of a row, up to 256 bytes: the hardware streams the rest once the
    /// row is read (the module built without the Builtin module prefetches nothing).
    @inline(__always)
    static func prefetchRow(_ row: UnsafeRawPointer, bytes: Int) {
        #if LOUPE_BUILTINS
        var offset = 0
        while offset < min(bytes, 256) {
            Builtin.int_prefetch_RawPointer(row.advanced(by: offset)._rawValue, Int32(0)._value, Int32(3)._value, Int32(1)._value)
            offset += 64
        }
        #endif
    }

    /// `query · row` with the row stored as float16 (widened in registers; F16C on x86).
    @inline(__always)
    static func dot(_ query: UnsafePointer<Float>, _ row: UnsafePointer<Float16>, count: Int) -> Float {
        let width = Lanes.scalarCount
        var s0 = Lanes(), s1 = Lanes()
        let rawQuery = UnsafeRawPointer(query), rawRow = UnsafeRawPointer(row)
        var i = 0
        while i + 2 * width <= count {
            s0 += rawQuery.loadUnaligned(fromByteOffset: 4 * i, as: Lanes.self) * widen(rawRow.loadUnaligned(fromByteOffset: 2 * i, as: HalfLanes.self))
            s1 += rawQuery.loadUnaligned(fromByteOffset: 4 * (i + width), as: Lanes.self)
                * widen(rawRow.loadUnaligned(fromByteOffset: 2 * (i + width), as: HalfLanes.self))
            i += 2 * width
        }
        var sum = (s0 + s1).sum()
        while i < count {
            sum += query[i] * Float(row[i])
            i += 1
        }
        return sum
    }

    /// `query · row` with the row stored as int8 codes (the caller applies the row's scale).
    @inline(__always)
    static func dot(_ query: UnsafePointer<Float>, _ row: UnsafePointer<Int8>, count: Int) -> Float {
        let width = Lanes.scalarCount
        var s0 = Lanes(), s1 = Lanes()
        let rawQuery = UnsafeRawPointer(query), rawRow = UnsafeRawPointer(row)
        var i = 0
        while i + 2 * width <= count {
            s0 += rawQuery.loadUnaligned(fromByteOffset: 4 * i, as: Lanes.self) * widen(rawRow.loadUnaligned(fromByteOffset: i, as: ByteLanes.self))
            s1 += rawQuery.loadUnaligned(fromByteOffset: 4 * (i + width), as: Lanes.self)
                * widen(rawRow.loadUnaligned(fromByteOffset: i + width, as: ByteLanes.self))
            i += 2 * width
        }
        var sum = (s0 + s1).sum()
        while i < count {
            sum += query[i] * Float(row[i])
            i += 1
        }
        return sum
    }

    /// float16 values widened to float32 (F16C on x86; a software call per value without it).
    static func widen(_ half: UnsafePointer<Float16>, count: Int, into out: UnsafeMutablePointer<Float>) {
        let width = Lanes.scalarCount
        let rawHalf = UnsafeRawPointer(half), rawOut = UnsafeMutableRawPointer(out)
        var i = 0
        while i + width <= count {
            rawOut.storeBytes(of: widen(rawHalf.loadUnaligned(fromByteOffset: 2 * i, as: HalfLanes.self)), toByteOffset: 4 * i, as: Lanes.self)
            i += width
        }
        while i < count {
            out[i] = Float(half[i])
            i += 1
        }
    }

    @inline(__always)
    static func widen(_ half: HalfLanes) -> Lanes { Lanes(half) }

    @inline(__always)
    static func widen(_ bytes: ByteLanes) -> Lanes { Lanes(WordLanes(truncatingIfNeeded: bytes)) }
}
