import Foundation

/// How search results are returned where a collection holds video frames: one hit per video with its
/// moments (the default), or every frame on its own.
public enum GroupBy: String, Sendable, CaseIterable {
    case video, frame
}

/// A stretch of a video whose sampled frames all matched: from the first to the last of them, with the
/// best frame's time and relevance (Azure's video retrieval answered with the same `start`, `end`,
/// `best` and `relevance`).
public struct VideoMoment: Sendable, Equatable {
    public let start: Double
    public let end: Double
    public let best: Double
    /// The best frame's result (its item is the frame, with its thumbnail).
    public let bestFrame: SearchResult
}

public enum GroupedHit: Sendable, Equatable {
    case item(SearchResult)
    /// A video's moments, best first.
    case video(id: String, moments: [VideoMoment])

    public var best: SearchResult {
        switch self {
        case .item(let result): result
        case .video(_, let moments): moments[0].bestFrame
        }
    }
}

/// What video frames record in their metadata (`BatchFeed` gives them).
public enum FrameMetadata {
    public static let video = "video"
    public static let time = "video_time"
    public static let interval = "video_interval"
}

public enum Moments {
    /// Candidates asked of the store for k grouped hits: the frames of one moment take several places.
    public static func candidates(for k: Int) -> Int { min(1000, max(100, 10 * k)) }

    /// Gathers frames of one video into moments (frames no more than 1.5 sampling intervals apart are one
    /// moment) and ranks videos and other items together by their best relevance; the first `k` hits.
    public static func group(_ results: [SearchResult], k: Int) -> [GroupedHit] {
        var hits = [GroupedHit]()
        var framesByVideo = [String: [(time: Double, result: SearchResult)]]()
        var firstSeen = [String]()
        for result in results {
            let metadata = result.item.metadata
            guard let video = metadata[FrameMetadata.video], let time = metadata[FrameMetadata.time].flatMap(Double.init) else {
                hits.append(.item(result))
                continue
            }
            if framesByVideo[video] == nil { firstSeen.append(video) }
            framesByVideo[video, default: []].append((time, result))
        }
        for video in firstSeen {
            let frames = framesByVideo[video]!.sorted { $0.time < $1.time }
            var moments = [VideoMoment]()
            var run = [frames[0]]
            func close() {
                let best = run.max { $0.result.relevance < $1.result.relevance }!
                moments.append(VideoMoment(start: run[0].time, end: run[run.count - 1].time, best: best.time, bestFrame: best.result))
            }
            for frame in frames.dropFirst() {
                let interval = frame.result.item.metadata[FrameMetadata.interval].flatMap(Double.init) ?? 1
                if frame.time - run[run.count - 1].time > 1.5 * interval {
                    close()
                    run = []
                }
                run.append(frame)
            }
            close()
            hits.append(.video(id: video, moments: moments.sorted { $0.bestFrame.relevance > $1.bestFrame.relevance }))
        }
        // Stable: equal relevance keeps the store's order.
        return Array(hits.enumerated().sorted { ($0.element.best.relevance, -$0.offset) > ($1.element.best.relevance, -$1.offset) }
            .map(\.element).prefix(k))
    }
}

extension Moments {
    /// Runs `search` (k → the store's best k) and returns hits grouped as `groupBy` says. A collection
    /// without videos pays nothing: only when a frame is among the best k are more candidates fetched.
    public static func search(k: Int, groupBy: GroupBy, _ search: (Int) async throws -> [SearchResult]) async rethrows -> [GroupedHit] {
        let best = try await search(k)
        guard groupBy == .video, best.contains(where: { $0.item.metadata[FrameMetadata.video] != nil }) else { return best.map(GroupedHit.item) }
        return group(try await search(max(k, candidates(for: k))), k: k)
    }
}

extension GroupedHit {
    /// The hit as the CLI prints it and the search route answers: `id`, `kind` (image, video or frame),
    /// `relevance`, `cosine`, `metadata`; a video adds its best moment's `start`, `end`, `best` and
    /// `frame` (the best frame's item id, for its thumbnail), and all its `moments`.
    public func body(source: Bool = false) -> HitBody {
        let result = best
        var body = HitBody(id: result.item.id, kind: "image", relevance: Double(result.relevance), cosine: Double(result.similarity),
                           metadata: result.item.metadata, source: source ? result.item.source : nil)
        switch self {
        case .item(let result):
            body.kind = result.item.metadata[FrameMetadata.video] == nil ? "image" : "frame"
        case .video(let id, let moments):
            body.id = id
            body.kind = "video"
            body.metadata = result.item.metadata.filter { $0.key != FrameMetadata.time && $0.key != FrameMetadata.interval }
            let bodies = moments.map { moment in
                HitBody.Moment(start: moment.start, end: moment.end, best: moment.best, relevance: Double(moment.bestFrame.relevance),
                               cosine: Double(moment.bestFrame.similarity), frame: moment.bestFrame.item.id)
            }
            (body.start, body.end, body.best, body.frame) = (bodies[0].start, bodies[0].end, bodies[0].best, bodies[0].frame)
            body.moments = bodies
        }
        return body
    }
}

/// One search hit as JSON: what `GroupedHit.body(source:)` makes.
public struct HitBody: Codable, Sendable, Equatable {
    public struct Moment: Codable, Sendable, Equatable {
        public var start, end, best, relevance, cosine: Double
        public var frame: String
    }

    public var id: String
    public var kind: String
    public var relevance: Double
    public var cosine: Double
    public var metadata: [String: String]
    public var source: String?
    public var start, end, best: Double?
    public var frame: String?
    public var moments: [Moment]?
}
