#include "CVideo.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/log.h>
#include <libswscale/swscale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { probe_side = 32, probe_bytes = probe_side * probe_side * 3 };

struct loupe_video {
    AVFormatContext *format;
    AVCodecContext *codec;
    AVPacket *packet;
    AVFrame *frame;
    int stream;
    double time_base;
    double start;
    int output_width, output_height;
    // Scalers are made for the decoded frames' size and format, which a stream may change midway.
    struct SwsContext *scale, *probe;
    int scaler_width, scaler_height, scaler_format;
    uint8_t previous[probe_bytes], current[probe_bytes];
    int have_previous;
    double next_sample, last_taken;
    int taken_any, flushing, finished;
    int64_t damaged_packets, read_packets;
    double last_decoded;
    int keyframes_only;
};

static void describe(int code, const char *what, char *message, size_t size) {
    char reason[AV_ERROR_MAX_STRING_SIZE] = {0};
    av_strerror(code, reason, sizeof reason);
    snprintf(message, size, "%s: %s", what, reason);
}

/// Whether the container's index lists a keyframe at least every `interval` seconds (plus one frame, as
/// timestamps jitter) from the start to `duration`. Only keyframes the index lists are counted, so an index
/// that lists some of them (Matroska's cues may) can only answer no.
static int keyframes_every(AVStream *stream, double time_base, double start, double duration, double interval) {
    int count = avformat_index_get_entries_count(stream);
    if (count < 1 || duration <= 0 || interval <= 0) return 0;
    double frame = stream->avg_frame_rate.num > 0 && stream->avg_frame_rate.den > 0 ? av_q2d(av_inv_q(stream->avg_frame_rate)) : 0.04;
    double limit = interval + frame + 1e-3, previous = 0;
    for (int i = 0; i < count; i++) {
        const AVIndexEntry *entry = avformat_index_get_entry(stream, i);
        if (!entry || !(entry->flags & AVINDEX_KEYFRAME)) continue;
        if (entry->timestamp == AV_NOPTS_VALUE) return 0;
        double time = entry->timestamp * time_base - start;
        if (time - previous > limit) return 0;
        if (time > previous) previous = time;
    }
    return duration - previous <= limit;
}

loupe_video *loupe_video_open(const char *path, int32_t shorter_side, double interval, int32_t all_frames, loupe_video_info *info,
                              char *message, size_t message_size) {
    // A library does not print: FFmpeg's own messages are silenced, and errors are returned.
    av_log_set_level(AV_LOG_QUIET);
    memset(info, 0, sizeof *info);
    loupe_video *video = calloc(1, sizeof *video);
    if (!video) { snprintf(message, message_size, "out of memory"); return NULL; }
    video->stream = -1;
    // A hostile file must not make FFmpeg open other files or the network (playlists, concat lists,
    // HLS): only plain files, and only the containers Loupe ingests.
    AVDictionary *options = NULL;
    av_dict_set(&options, "protocol_whitelist", "file", 0);
    av_dict_set(&options, "format_whitelist", "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi", 0);
    int status = avformat_open_input(&video->format, path, NULL, &options);
    av_dict_free(&options);
    if (status < 0) {
        describe(status, status == AVERROR_INVALIDDATA ? "not a video Loupe reads (mp4, mov, mkv, webm, avi)" : "cannot open the video",
                 message, message_size);
        loupe_video_close(video);
        return NULL;
    }
    if ((status = avformat_find_stream_info(video->format, NULL)) < 0) {
        describe(status, "cannot read the video's streams", message, message_size);
        loupe_video_close(video);
        return NULL;
    }
    const AVCodec *decoder = NULL;
    video->stream = av_find_best_stream(video->format, AVMEDIA_TYPE_VIDEO, -1, -1, &decoder, 0);
    if (video->stream < 0 || !decoder) {
        snprintf(message, message_size, video->stream == AVERROR_DECODER_NOT_FOUND ? "no decoder for the video's codec" : "the file has no video stream");
        loupe_video_close(video);
        return NULL;
    }
    AVStream *stream = video->format->streams[video->stream];
    // Other streams' packets are dropped by the demuxer instead of being read and skipped.
    for (unsigned i = 0; i < video->format->nb_streams; i++)
        if ((int)i != video->stream) video->format->streams[i]->discard = AVDISCARD_ALL;
    video->codec = avcodec_alloc_context3(decoder);
    if (!video->codec || avcodec_parameters_to_context(video->codec, stream->codecpar) < 0) {
        snprintf(message, message_size, "cannot set up the video decoder");
        loupe_video_close(video);
        return NULL;
    }
    video->time_base = av_q2d(stream->time_base);
    video->start = stream->start_time != AV_NOPTS_VALUE ? stream->start_time * video->time_base : 0;
    info->duration = stream->duration != AV_NOPTS_VALUE ? stream->duration * video->time_base
                   : video->format->duration != AV_NOPTS_VALUE ? (double)video->format->duration / AV_TIME_BASE : -1;
    // One thread: the model has the cores. Frames no other frame refers to (most B-frames) are not
    // decoded: sampling and cut detection look at the others, a few hundredths of a second apart, and
    // decoding costs half as much (a 720p H.264 file: 0.28 s instead of 0.6 s for 10 seconds). When
    // the index shows a keyframe at least every interval (Android's recorder asks for one a second by
    // default), only keyframes are decoded: each decodes on its own, so the frames taken are the pixels
    // a full decode gives, for a fraction of the work; a cut between keyframes shows at the next one.
    video->codec->thread_count = 1;
    video->keyframes_only = !all_frames && keyframes_every(stream, video->time_base, video->start, info->duration, interval);
    // The decoder skips the other frames; the demuxer still hands them over, because H.264's decoder
    // gives keyframes the wrong timestamps when it sees nothing between them.
    video->codec->skip_frame = video->keyframes_only ? AVDISCARD_NONKEY : AVDISCARD_NONREF;
    if ((status = avcodec_open2(video->codec, decoder, NULL)) < 0) {
        describe(status, "cannot open the video decoder", message, message_size);
        loupe_video_close(video);
        return NULL;
    }
    int width = stream->codecpar->width, height = stream->codecpar->height;
    // Up to 8K: a decoder holds several frames of this size.
    if (width <= 0 || height <= 0 || width > 8192 || height > 8192) {
        snprintf(message, message_size, "the video's frame size %dx%d is not one Loupe reads", width, height);
        loupe_video_close(video);
        return NULL;
    }
    AVRational aspect = av_guess_sample_aspect_ratio(video->format, stream, NULL);
    if (aspect.num > 0 && aspect.den > 0) width = (int)lround((double)width * aspect.num / aspect.den);
    if (width < 1) width = 1;
    double scale = (double)shorter_side / (width < height ? width : height);
    if (scale > 1 || shorter_side <= 0) scale = 1;
    video->output_width = (int)lround(width * scale);
    video->output_height = (int)lround(height * scale);
    if (video->output_width < 1) video->output_width = 1;
    if (video->output_height < 1) video->output_height = 1;

    video->packet = av_packet_alloc();
    video->frame = av_frame_alloc();
    if (!video->packet || !video->frame) {
        snprintf(message, message_size, "out of memory");
        loupe_video_close(video);
        return NULL;
    }
    info->width = width;
    info->keyframes_only = video->keyframes_only;
    info->height = height;
    info->output_width = video->output_width;
    info->output_height = video->output_height;
    snprintf(info->codec, sizeof info->codec, "%s", decoder->name);
    snprintf(info->container, sizeof info->container, "%s", video->format->iformat->name);
    return video;
}

static int ensure_scalers(loupe_video *video, const AVFrame *frame) {
    if (video->scale && video->scaler_width == frame->width && video->scaler_height == frame->height && video->scaler_format == frame->format)
        return 0;
    sws_freeContext(video->scale);
    sws_freeContext(video->probe);
    video->scale = sws_getContext(frame->width, frame->height, frame->format, video->output_width, video->output_height,
                                  AV_PIX_FMT_RGB24, SWS_AREA | SWS_ACCURATE_RND, NULL, NULL, NULL);
    video->probe = sws_getContext(frame->width, frame->height, frame->format, probe_side, probe_side, AV_PIX_FMT_RGB24,
                                  SWS_AREA, NULL, NULL, NULL);
    video->scaler_width = frame->width;
    video->scaler_height = frame->height;
    video->scaler_format = frame->format;
    return video->scale && video->probe ? 0 : -1;
}

/// The mean absolute difference of this frame's small copy from the previous one's, 0...1. In colour:
/// grey copies miss cuts between colours of equal brightness.
static double picture_change(loupe_video *video, const AVFrame *frame) {
    uint8_t *planes[4] = {video->current, NULL, NULL, NULL};
    int strides[4] = {probe_side * 3, 0, 0, 0};
    sws_scale(video->probe, (const uint8_t *const *)frame->data, frame->linesize, 0, frame->height, planes, strides);
    double change = 0;
    if (video->have_previous) {
        long total = 0;
        for (int i = 0; i < probe_bytes; i++) total += abs((int)video->current[i] - (int)video->previous[i]);
        change = (double)total / (255.0 * probe_bytes);
    }
    memcpy(video->previous, video->current, sizeof video->previous);
    video->have_previous = 1;
    return change;
}

/// The next decoded frame: 1, 0 at the end, -1 on failure.
static int decode_next(loupe_video *video, char *message, size_t message_size) {
    for (;;) {
        int status = avcodec_receive_frame(video->codec, video->frame);
        if (status == 0) return 1;
        if (status == AVERROR_EOF) return 0;
        if (status != AVERROR(EAGAIN)) {
            describe(status, "cannot decode the video", message, message_size);
            return -1;
        }
        if (video->flushing) return 0;
        status = av_read_frame(video->format, video->packet);
        if (status == AVERROR_EOF) {
            video->flushing = 1;
            avcodec_send_packet(video->codec, NULL);
            continue;
        }
        if (status < 0) {
            describe(status, "cannot read the video", message, message_size);
            return -1;
        }
        if (video->packet->stream_index == video->stream) {
            video->read_packets++;
            // A packet the decoder refuses is counted as damage, and decoding goes on with the next.
            if (avcodec_send_packet(video->codec, video->packet) < 0) video->damaged_packets++;
        }
        av_packet_unref(video->packet);
    }
}

int32_t loupe_video_next(loupe_video *video, double interval, double scene_threshold, double max_seconds,
                         uint8_t *rgb, loupe_video_frame *out, char *message, size_t message_size) {
    if (video->finished) return 0;
    for (;;) {
        int status = decode_next(video, message, message_size);
        if (status <= 0) {
            video->finished = 1;
            return status;
        }
        int64_t stamp = video->frame->best_effort_timestamp;
        double time = stamp == AV_NOPTS_VALUE ? video->last_taken : stamp * video->time_base - video->start;
        if (time < 0) time = 0;
        video->last_decoded = time;
        if (time > max_seconds) {
            video->finished = 1;
            av_frame_unref(video->frame);
            return 0;
        }
        if (ensure_scalers(video, video->frame) < 0) {
            snprintf(message, message_size, "cannot convert the video's frames (pixel format %d)", video->frame->format);
            av_frame_unref(video->frame);
            return -1;
        }
        double change = picture_change(video, video->frame);
        int on_schedule = !video->taken_any || time >= video->next_sample;
        int scene = video->taken_any && change > scene_threshold && time - video->last_taken >= interval / 4;
        if (on_schedule || scene) {
            uint8_t *planes[4] = {rgb, NULL, NULL, NULL};
            int strides[4] = {video->output_width * 3, 0, 0, 0};
            sws_scale(video->scale, (const uint8_t *const *)video->frame->data, video->frame->linesize, 0, video->frame->height,
                      planes, strides);
            out->time = time;
            out->scene_change = !on_schedule;
            video->taken_any = 1;
            video->last_taken = time;
            if (on_schedule) video->next_sample = (floor(time / interval) + 1) * interval;
            av_frame_unref(video->frame);
            return 1;
        }
        av_frame_unref(video->frame);
    }
}

void loupe_video_progress(const loupe_video *video, int64_t *damaged, int64_t *read, double *last_decoded) {
    *damaged = video->damaged_packets;
    *read = video->read_packets;
    *last_decoded = video->last_decoded;
}

void loupe_video_close(loupe_video *video) {
    if (!video) return;
    sws_freeContext(video->scale);
    sws_freeContext(video->probe);
    av_frame_free(&video->frame);
    av_packet_free(&video->packet);
    avcodec_free_context(&video->codec);
    avformat_close_input(&video->format);
    free(video);
}
