#ifndef LOUPE_CVIDEO_H
#define LOUPE_CVIDEO_H

#include <stddef.h>
#include <stdint.h>

/// A video file opened for sampling frames (FFmpeg's libavformat, libavcodec, libswscale).
typedef struct loupe_video loupe_video;

typedef struct {
    /// Seconds, from the video stream or else the container; negative when neither says.
    double duration;
    /// The frames' display size (sample aspect ratio applied), and the size frames are scaled to.
    int32_t width, height;
    int32_t output_width, output_height;
    char codec[32];
    char container[32];
    /// 1 when only keyframes are decoded (see loupe_video_open).
    int32_t keyframes_only;
} loupe_video_info;

typedef struct {
    /// Seconds from the start of the video.
    double time;
    /// 1 when this frame was taken because the picture changed, not because an interval passed.
    int32_t scene_change;
} loupe_video_frame;

/// Opens `path` (local files only, in the containers Loupe accepts) and prepares frames scaled so that
/// their shorter side is `shorter_side` pixels (never enlarged). Unless `all_frames` is set, only
/// keyframes are decoded when the container's index shows one at least every `interval` seconds.
/// NULL with a message on failure.
loupe_video *loupe_video_open(const char *path, int32_t shorter_side, double interval, int32_t all_frames, loupe_video_info *info,
                              char *message, size_t message_size);

/// Decodes up to the next sampled frame (frames no other frame refers to are skipped, so a sample may
/// come a few frames late, or up to a keyframe late when only keyframes are decoded; its time is its own): the first frame, the first at or after each multiple of
/// `interval` seconds, and any frame whose picture differs from the previous frame's by more than
/// `scene_threshold` (mean absolute difference of small RGB copies, 0...1), at least `interval / 4`
/// after the last frame taken. Writes RGB (output_width × output_height × 3) into `rgb`.
/// Returns 1 for a frame, 0 at the end (or past `max_seconds`), -1 with a message on failure.
int32_t loupe_video_next(loupe_video *video, double interval, double scene_threshold, double max_seconds,
                         uint8_t *rgb, loupe_video_frame *frame, char *message, size_t message_size);

/// Packets the decoder refused as damaged so far, packets read, and the last decoded frame's time.
void loupe_video_progress(const loupe_video *video, int64_t *damaged, int64_t *read, double *last_decoded);

void loupe_video_close(loupe_video *video);

#endif
