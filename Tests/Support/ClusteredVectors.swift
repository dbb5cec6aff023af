import Foundation

/// Clustered synthetic vectors, as image embeddings are: a few hundred centres with spread around them.
public enum ClusteredVectors {
    /// `count` points around `clusters` centres; the centres come from `centreSeed` (share it between data
    /// and queries), the spread from `seed`.
    public static func make(count: Int, dimension: Int, clusters: Int, seed: UInt64, centreSeed: UInt64 = 42) -> [[Float]] {
        var state = centreSeed
        func gaussian() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let u1 = max(Double(state >> 11) / Double(1 << 53), 1e-12)
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let u2 = Double(state >> 11) / Double(1 << 53)
            return Float((-2 * log(u1)).squareRoot() * cos(2 * .pi * u2))
        }
        let centres = (0..<clusters).map { _ in (0..<dimension).map { _ in gaussian() } }
        state = seed
        return (0..<count).map { i in centres[i % clusters].map { $0 + 0.6 * gaussian() } }
    }
}
