/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* Local tracks of the call: the request sink pads video_%u / audio_%u. The
 * chain behind a pad is built when its caps arrive:
 *   raw video:  queue ! videoconvert ! vp8enc (or openh264enc ! h264parse)
 *   raw audio:  queue ! audioconvert ! audioresample ! opusenc
 *   VP8 / H.264 / Opus: passed through (H.264 through h264parse)
 * then [matrixrtcframeenc] ! payloader, and into a track of our own SFU
 * connection. EOS on a pad unpublishes its track. */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdio.h>
#include <string.h>

#include "fcformat.h"
#include "gstmatrixrtccallbin.h"

GST_DEBUG_CATEGORY_EXTERN (gst_matrix_rtc_call_bin_debug);
#define GST_CAT_DEFAULT gst_matrix_rtc_call_bin_debug

#define VIDEO_PT 96
#define H264_PT 102
#define OPUS_PT 111

/* The H.264 profiles WebRTC receivers (browsers, Element Call) decode and
 * livekit-server registers (profile_idc 66, 77, 100); others are refused. */
#define H264_PROFILES                                                          \
  "{ (string) constrained-baseline, (string) baseline, (string) main, "        \
  "(string) constrained-high, (string) progressive-high, (string) high }"
#define VIDEO_SINK_CAPS                                                        \
  "video/x-raw; video/x-vp8; video/x-h264, stream-format = (string) "          \
  "{ byte-stream, avc }, profile = (string) " H264_PROFILES
#define AUDIO_SINK_CAPS "audio/x-raw; audio/x-opus"

struct _GstMatrixRtcLocalTrack
{
  GstMatrixRtcCallBin *bin; /* not a reference */
  GstPad *sinkpad;          /* our ghost pad */
  gchar *kind;
  GPtrArray *elements;
  GstElement *frameenc;
  GstPad *lk_pad;
  gboolean built;
  gboolean eos;
};

typedef struct
{
  GPtrArray *tracks; /* GstMatrixRtcLocalTrack, under the object lock */
  guint next_video, next_audio;
} PublishState;

static GQuark publish_quark;

static void
local_track_free (GstMatrixRtcLocalTrack *t)
{
  gst_clear_object (&t->sinkpad);
  gst_clear_object (&t->lk_pad);
  gst_clear_object (&t->frameenc);
  g_clear_pointer (&t->elements, g_ptr_array_unref);
  g_free (t->kind);
  g_free (t);
}

static void
publish_state_free (PublishState *st)
{
  g_ptr_array_unref (st->tracks);
  g_free (st);
}

static PublishState *
get_state (GstMatrixRtcCallBin *self)
{
  return g_object_get_qdata (G_OBJECT (self), publish_quark);
}

void
gst_matrix_rtc_publish_init (GstMatrixRtcCallBin *self)
{
  PublishState *st = g_new0 (PublishState, 1);

  if (publish_quark == 0)
    publish_quark = g_quark_from_static_string ("matrixrtc-publish");
  st->tracks
      = g_ptr_array_new_with_free_func ((GDestroyNotify)local_track_free);
  g_object_set_qdata_full (
      G_OBJECT (self), publish_quark, st, (GDestroyNotify)publish_state_free);
}

void
gst_matrix_rtc_publish_finalize (GstMatrixRtcCallBin *self)
{
  g_object_set_qdata (G_OBJECT (self), publish_quark, NULL);
}

guint
gst_matrix_rtc_publish_count (GstMatrixRtcCallBin *self)
{
  PublishState *st = get_state (self);
  guint i, n = 0;

  if (st == NULL)
    return 0;
  GST_OBJECT_LOCK (self);
  for (i = 0; i < st->tracks->len; i++) {
    GstMatrixRtcLocalTrack *t = g_ptr_array_index (st->tracks, i);

    if (t->built && !t->eos)
      n++;
  }
  GST_OBJECT_UNLOCK (self);
  return n;
}

GPtrArray *
gst_matrix_rtc_publish_dup_frameencs (GstMatrixRtcCallBin *self)
{
  PublishState *st = get_state (self);
  GPtrArray *out = g_ptr_array_new_with_free_func (gst_object_unref);
  guint i;

  if (st == NULL)
    return out;
  GST_OBJECT_LOCK (self);
  for (i = 0; i < st->tracks->len; i++) {
    GstMatrixRtcLocalTrack *t = g_ptr_array_index (st->tracks, i);

    if (t->frameenc != NULL)
      g_ptr_array_add (out, gst_object_ref (t->frameenc));
  }
  GST_OBJECT_UNLOCK (self);
  return out;
}

void
gst_matrix_rtc_publish_flush (GstMatrixRtcCallBin *self)
{
  PublishState *st = get_state (self);
  g_autoptr (GPtrArray) pads
      = g_ptr_array_new_with_free_func (gst_object_unref);
  guint i;

  GST_OBJECT_LOCK (self);
  for (i = 0; i < st->tracks->len; i++) {
    GstMatrixRtcLocalTrack *t = g_ptr_array_index (st->tracks, i);

    if (t->lk_pad != NULL)
      g_ptr_array_add (pads, gst_object_ref (t->lk_pad));
  }
  GST_OBJECT_UNLOCK (self);
  for (i = 0; i < pads->len; i++)
    gst_pad_send_event (
        g_ptr_array_index (pads, i), gst_event_new_flush_start ());
}

static GstPadTemplate *
request_sink_template (const gchar *name_template, const gchar *caps_string)
{
  GstCaps *caps = gst_caps_from_string (caps_string);
  GstPadTemplate *templ = gst_pad_template_new (
      name_template, GST_PAD_SINK, GST_PAD_REQUEST, caps);

  gst_caps_unref (caps); /* (the template takes its own reference) */
  return templ;
}

GstPadTemplate *
gst_matrix_rtc_publish_video_template (void)
{
  return request_sink_template ("video_%u", VIDEO_SINK_CAPS);
}

GstPadTemplate *
gst_matrix_rtc_publish_audio_template (void)
{
  return request_sink_template ("audio_%u", AUDIO_SINK_CAPS);
}

static GstElement *
add (GstMatrixRtcLocalTrack *t, const gchar *factory)
{
  GstElement *e = gst_element_factory_make (factory, NULL);

  if (e == NULL) {
    GST_ELEMENT_ERROR (t->bin, CORE, MISSING_PLUGIN,
        ("The element %s is missing (needed to publish %s)", factory, t->kind),
        (NULL));
    return NULL;
  }
  g_ptr_array_add (t->elements, gst_object_ref (e));
  gst_bin_add (GST_BIN (t->bin), e);
  return e;
}

static gboolean
h264_profile_supported (const gchar *profile)
{
  static const gchar *const supported[] = { "constrained-baseline", "baseline",
    "main", "constrained-high", "progressive-high", "high", NULL };

  return g_strv_contains (supported, profile);
}

/* The SDP profile-level-id of an H.264 @profile, as livekit-server
 * registers it (its level is an upper bound receivers ignore); NULL when
 * unknown. */
static const gchar *
h264_profile_level_id_for (const gchar *profile)
{
  if (g_strcmp0 (profile, "constrained-baseline") == 0)
    return "42e01f";
  if (g_strcmp0 (profile, "baseline") == 0)
    return "42001f";
  if (g_strcmp0 (profile, "main") == 0)
    return "4d001f";
  if (profile != NULL && g_str_has_suffix (profile, "high"))
    return "640032";
  return NULL;
}

/* Drops H.264 access unit delimiters (h264parse puts one before each
 * access unit) before a frame is encrypted. All of an encrypted frame up
 * to its first slice is authenticated, and livekit-server starts a new
 * subscriber at a key frame's first parameter set, without the AUD packet
 * before it: that first key frame would not decrypt at any receiver, ours
 * or Element Call, which then waits for the next one (seconds). libwebrtc
 * sends no AUDs either. */
typedef struct
{
  gboolean discont; /* an AUD-only buffer was dropped: mark the next one */
} AudStrip;

/* @in without its AUD units: @in itself when it has none, a new buffer
 * (@in unreffed), or NULL (@in left to the caller) when nothing else was
 * in it. */
static GstBuffer *
strip_h264_aud (AudStrip *strip, GstBuffer *in)
{
  GstBuffer *out;
  GByteArray *bytes = NULL;
  GstMapInfo map;
  gsize pos = 0, kept = 0;
  FcNal nal;

  if (!gst_buffer_map (in, &map, GST_MAP_READ))
    return in;
  while (fc_annexb_next_nal (map.data, map.size, &pos, &nal)) {
    if (nal.size == 0 || (map.data[nal.offset] & 0x1f) != 9)
      continue;
    if (bytes == NULL)
      bytes = g_byte_array_sized_new (map.size);
    /* keep what came before this unit, skip the unit itself */
    g_byte_array_append (bytes, map.data + kept, nal.start_code - kept);
    kept = MIN (pos, map.size);
    if (kept < map.size && kept > 0 && map.data[kept - 1] == 0)
      kept--; /* the zero of the next unit's 4-byte start code */
  }
  if (bytes == NULL) {
    gst_buffer_unmap (in, &map);
    out = in;
  } else {
    g_byte_array_append (bytes, map.data + kept, map.size - kept);
    gst_buffer_unmap (in, &map);
    if (bytes->len == 0) {
      /* an access unit of AUDs only: nothing to encrypt or send */
      if (GST_BUFFER_FLAG_IS_SET (in, GST_BUFFER_FLAG_DISCONT))
        strip->discont = TRUE;
      g_byte_array_free (bytes, TRUE);
      return NULL;
    }
    out = gst_buffer_new_wrapped (bytes->data, bytes->len); /* takes it */
    g_byte_array_free (bytes, FALSE);
    gst_buffer_copy_into (out, in, GST_BUFFER_COPY_METADATA, 0, -1);
    gst_buffer_unref (in);
  }
  if (strip->discont) {
    out = gst_buffer_make_writable (out);
    GST_BUFFER_FLAG_SET (out, GST_BUFFER_FLAG_DISCONT);
    strip->discont = FALSE;
  }
  return out;
}

static gboolean
strip_h264_aud_in_list (GstBuffer **buffer, guint idx, gpointer user_data)
{
  GstBuffer *out = strip_h264_aud (user_data, *buffer);

  if (out == NULL)
    gst_buffer_unref (*buffer);
  *buffer = out; /* NULL removes it from the list */
  return TRUE;
}

static GstPadProbeReturn
strip_h264_aud_probe (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  AudStrip *strip = user_data;

  if (info->type & GST_PAD_PROBE_TYPE_BUFFER) {
    GstBuffer *out = strip_h264_aud (strip, GST_PAD_PROBE_INFO_BUFFER (info));

    if (out == NULL)
      return GST_PAD_PROBE_DROP; /* the pad unrefs the buffer */
    GST_PAD_PROBE_INFO_DATA (info) = out;
  }
  if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST) {
    GstBufferList *list = GST_PAD_PROBE_INFO_BUFFER_LIST (info);

    list = gst_buffer_list_make_writable (list);
    gst_buffer_list_foreach (list, strip_h264_aud_in_list, strip);
    GST_PAD_PROBE_INFO_DATA (info) = list;
    if (gst_buffer_list_length (list) == 0)
      return GST_PAD_PROBE_DROP; /* the pad unrefs the list */
  }
  return GST_PAD_PROBE_OK;
}

static void
set_caps_string (GstElement *capsfilter, const gchar *description)
{
  GstCaps *caps = gst_caps_from_string (description);

  g_object_set (capsfilter, "caps", caps, NULL);
  gst_caps_unref (caps);
}

/* Builds the chain for @caps; returns its first element. */
static GstElement *
build_chain (GstMatrixRtcLocalTrack *t, GstCaps *caps)
{
  GstMatrixRtcCallBin *self = t->bin;
  GstStructure *s = gst_caps_get_structure (caps, 0);
  const gchar *name = gst_structure_get_name (s);
  GstMatrixRtcMediaConfig config;
  GstElement *chain[10] = { NULL };
  GstElement *pay;
  GstCaps *rtp_caps = NULL;
  guint n = 0, i;
  gint width = 0, height = 0;
  gboolean ok = TRUE, h264 = FALSE, audio = g_str_has_prefix (name, "audio/");
  const gchar *h264_profile_level_id = NULL;
  gchar avc_profile_level_id[7];

  /* e2ee-mode=auto is resolved on the call thread once the room is known;
   * the chain (encryptor, payloader, track flag) depends on it. */
  if (gst_matrix_rtc_call_bin_wait_e2ee_mode (self, t->sinkpad, 30000)
      == GST_MATRIX_RTC_E2EE_MODE_AUTO)
    GST_WARNING_OBJECT (self,
        "e2ee mode still unresolved for %s: publishing "
        "encrypted without a key (frames dropped)",
        t->kind);
  gst_matrix_rtc_call_bin_get_media_config (self, &config);
  GST_DEBUG_OBJECT (
      self, "building the %s chain, encrypted: %d", t->kind, config.encrypt);
  gst_structure_get_int (s, "width", &width);
  gst_structure_get_int (s, "height", &height);

#define ADD(factory)                                                           \
  G_STMT_START                                                                 \
  {                                                                            \
    if ((chain[n] = add (t, factory)) == NULL) {                               \
      ok = FALSE;                                                              \
      goto out;                                                                \
    }                                                                          \
    n++;                                                                       \
  }                                                                            \
  G_STMT_END

  if (g_str_equal (name, "video/x-raw")) {
    ADD ("queue");
    g_object_set (chain[n - 1], "leaky", 2, "max-size-buffers", 3,
        "max-size-bytes", 0, "max-size-time", (guint64)0, NULL);
    ADD ("videoconvert");
    if (config.video_codec == GST_MATRIX_RTC_VIDEO_CODEC_H264) {
      h264 = TRUE;
      ADD ("openh264enc");
      g_object_set (chain[n - 1], "bitrate", config.video_bitrate_kbps * 1000,
          "gop-size", 60, "rate-control", 1, NULL);
      ADD ("h264parse");
      g_object_set (chain[n - 1], "config-interval", -1, NULL);
      ADD ("capsfilter");
      /* constrained baseline, as Element Call publishes (42e01f) */
      set_caps_string (chain[n - 1],
          "video/x-h264,stream-format=byte-stream,alignment=au,"
          "profile=(string)constrained-baseline");
      h264_profile_level_id = "42e01f";
    } else {
      ADD ("vp8enc");
      g_object_set (chain[n - 1], "deadline", (gint64)1, "target-bitrate",
          (gint)(config.video_bitrate_kbps * 1000), "keyframe-max-dist", 60,
          "cpu-used", 8, "lag-in-frames", 0, "end-usage", 1, "error-resilient",
          1, NULL);
    }
  } else if (g_str_equal (name, "video/x-h264")) {
    const gchar *profile = gst_structure_get_string (s, "profile");

    h264 = TRUE;
    if (profile != NULL && !h264_profile_supported (profile)) {
      GST_ELEMENT_ERROR (self, STREAM, FORMAT,
          ("Cannot publish H.264 %s profile: WebRTC receivers decode "
           "constrained-baseline, baseline, main and high",
              profile),
          (NULL));
      ok = FALSE;
      goto out;
    }
    h264_profile_level_id = h264_profile_level_id_for (profile);
    if (h264_profile_level_id == NULL) {
      /* No profile in the caps (tsdemux, appsrc, restreams): the avcC of
       * stream-format=avc names it; else constrained baseline, which all
       * receivers take (they decode what the SPS says). */
      const GValue *v = gst_structure_get_value (s, "codec_data");
      GstBuffer *avcc
          = v && GST_VALUE_HOLDS_BUFFER (v) ? gst_value_get_buffer (v) : NULL;
      guint8 head[4];

      if (avcc != NULL && gst_buffer_extract (avcc, 0, head, 4) == 4
          && head[0] == 1) {
        g_snprintf (avc_profile_level_id, sizeof avc_profile_level_id,
            "%02x%02x%02x", head[1], head[2], head[3]);
        h264_profile_level_id = avc_profile_level_id;
      } else {
        h264_profile_level_id = "42e01f";
      }
      GST_INFO_OBJECT (self,
          "H.264 caps name no profile: profile-level-id %s for the SDP",
          h264_profile_level_id);
    }
    ADD ("h264parse");
    g_object_set (chain[n - 1], "config-interval", -1, NULL);
    ADD ("capsfilter");
    set_caps_string (chain[n - 1],
        "video/x-h264,stream-format=byte-stream,alignment=au,"
        "profile=" H264_PROFILES);
  } else if (g_str_equal (name, "audio/x-raw")) {
    ADD ("queue");
    g_object_set (chain[n - 1], "max-size-time", (guint64)200 * GST_MSECOND,
        "leaky", 2, NULL);
    ADD ("audioconvert");
    ADD ("audioresample");
    ADD ("opusenc");
    g_object_set (chain[n - 1], "bitrate",
        (gint)(config.audio_bitrate_kbps * 1000), NULL);
  } else if (!g_str_equal (name, "video/x-vp8")
             && !g_str_equal (name, "audio/x-opus")) {
    GST_ELEMENT_ERROR (self, STREAM, FORMAT,
        ("Cannot publish %s (raw video or audio, VP8, H.264 or Opus)", name),
        (NULL));
    ok = FALSE;
    goto out;
  }
  if (config.encrypt) {
    ADD ("matrixrtcframeenc");
    t->frameenc = gst_object_ref (chain[n - 1]);
    if (h264) {
      GstPad *sink = gst_element_get_static_pad (chain[n - 1], "sink");

      gst_pad_add_probe (sink,
          GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST,
          strip_h264_aud_probe, g_new0 (AudStrip, 1), g_free);
      gst_object_unref (sink);
    }
    if (config.passphrase != NULL)
      g_object_set (chain[n - 1], "passphrase", config.passphrase, NULL);
    else
      gst_matrix_rtc_keys_apply_own (self, chain[n - 1]);
  }
  if (audio) {
    ADD ("rtpopuspay");
    g_object_set (chain[n - 1], "pt", OPUS_PT, NULL);
    rtp_caps = gst_caps_from_string ("application/x-rtp,media=audio,"
                                     "encoding-name=OPUS,clock-rate=48000");
    gst_caps_set_simple (rtp_caps, "payload", G_TYPE_INT, OPUS_PT, NULL);
  } else if (h264) {
    ADD (config.encrypt ? "matrixrtch264pay" : "rtph264pay");
    g_object_set (chain[n - 1], "pt", H264_PT, NULL);
    if (!config.encrypt)
      g_object_set (chain[n - 1], "config-interval", -1, NULL);
    rtp_caps = gst_caps_from_string (
        "application/x-rtp,media=video,encoding-name=H264,clock-rate=90000,"
        "packetization-mode=(string)1");
    gst_caps_set_simple (rtp_caps, "payload", G_TYPE_INT, H264_PT, NULL);
    /* The SDP names the stream's profile. rtph264pay reads it from the
     * SPS when it is left open here (a fixed one would also make it
     * refuse other profiles and levels upstream); matrixrtch264pay does
     * not parse, so pre-encoded encrypted streams name it from the caps. */
    if (h264_profile_level_id != NULL
        && (config.encrypt || !g_str_equal (name, "video/x-h264")))
      gst_caps_set_simple (rtp_caps, "profile-level-id", G_TYPE_STRING,
          h264_profile_level_id, NULL);
  } else {
    ADD (config.encrypt ? "matrixrtcvp8pay" : "rtpvp8pay");
    g_object_set (chain[n - 1], "pt", VIDEO_PT, NULL);
    if (!config.encrypt)
      g_object_set (chain[n - 1], "picture-id-mode", 2, NULL);
    rtp_caps = gst_caps_from_string ("application/x-rtp,media=video,"
                                     "encoding-name=VP8,clock-rate=90000");
    gst_caps_set_simple (rtp_caps, "payload", G_TYPE_INT, VIDEO_PT, NULL);
  }
  pay = chain[n - 1];
  for (i = 1; i < n; i++) {
    if (!gst_element_link (chain[i - 1], chain[i])) {
      GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
          ("Could not link %s to %s", GST_OBJECT_NAME (chain[i - 1]),
              GST_OBJECT_NAME (chain[i])),
          (NULL));
      ok = FALSE;
      goto out;
    }
  }
  t->lk_pad = lk_connection_add_track (
      gst_matrix_rtc_call_bin_get_own_connection (self),
      audio ? "microphone" : "camera", audio ? "audio" : "video",
      audio ? LKPROTO__TRACK_SOURCE__MICROPHONE : LKPROTO__TRACK_SOURCE__CAMERA,
      rtp_caps, width > 0 ? width : 1280, height > 0 ? height : 720,
      config.encrypt);
  if (t->lk_pad == NULL) {
    ok = FALSE;
    goto out;
  }
  gst_object_ref (t->lk_pad);
  {
    GstPad *src = gst_element_get_static_pad (pay, "src");

    if (gst_pad_link (src, t->lk_pad) != GST_PAD_LINK_OK) {
      GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
          ("Could not link the %s payloader to the transport", t->kind),
          (NULL));
      ok = FALSE;
    }
    gst_object_unref (src);
  }
  for (i = n; i > 0; i--)
    gst_element_sync_state_with_parent (chain[i - 1]);
  GST_INFO_OBJECT (self, "publishing %s from %s%s", t->kind, name,
      config.encrypt ? ", encrypted" : "");

out:
#undef ADD
  gst_clear_caps (&rtp_caps);
  gst_matrix_rtc_media_config_clear (&config);
  return ok && n > 0 ? chain[0] : NULL;
}

static gboolean
all_eos (GstMatrixRtcCallBin *self)
{
  PublishState *st = get_state (self);
  gboolean eos = TRUE;
  guint i;

  GST_OBJECT_LOCK (self);
  for (i = 0; i < st->tracks->len; i++) {
    GstMatrixRtcLocalTrack *t = g_ptr_array_index (st->tracks, i);

    eos &= t->eos;
  }
  GST_OBJECT_UNLOCK (self);
  return eos;
}

typedef struct
{
  GstMatrixRtcCallBin *self;
  GstPad *lk_pad;
} UnpublishData;

static gpointer
unpublish_data_new (GstMatrixRtcCallBin *self, GstPad *lk_pad)
{
  UnpublishData *d = g_new0 (UnpublishData, 1);

  d->self = gst_object_ref (self);
  d->lk_pad = gst_object_ref (lk_pad);
  return d;
}

static void
unpublish_data_free (gpointer data)
{
  UnpublishData *d = data;

  gst_object_unref (d->self);
  gst_object_unref (d->lk_pad);
  g_free (d);
}

static gboolean
unpublish_cb (gpointer data)
{
  UnpublishData *d = data;
  LkConnection *own = gst_matrix_rtc_call_bin_get_own_connection (d->self);

  if (own != NULL && !all_eos (d->self)) {
    GST_INFO_OBJECT (d->self, "unpublishing %s", GST_PAD_NAME (d->lk_pad));
    lk_connection_remove_track (own, d->lk_pad);
  }
  return G_SOURCE_REMOVE;
}

static GstPadProbeReturn
sink_event_probe (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  GstMatrixRtcLocalTrack *t = user_data;
  GstMatrixRtcCallBin *self = t->bin;
  GstEvent *event = GST_PAD_PROBE_INFO_EVENT (info);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_CAPS: {
      GstCaps *caps;
      GstElement *first;
      GstPad *target;

      if (t->built)
        break;
      gst_event_parse_caps (event, &caps);
      first = build_chain (t, caps);
      if (first == NULL)
        return GST_PAD_PROBE_DROP;
      target = gst_element_get_static_pad (first, "sink");
      gst_ghost_pad_set_target (GST_GHOST_PAD (t->sinkpad), target);
      gst_object_unref (target);
      GST_OBJECT_LOCK (self);
      t->built = TRUE;
      GST_OBJECT_UNLOCK (self);
      break;
    }
    case GST_EVENT_STREAM_START:
    case GST_EVENT_FLUSH_STOP:
      GST_OBJECT_LOCK (self);
      t->eos = FALSE;
      GST_OBJECT_UNLOCK (self);
      break;
    case GST_EVENT_EOS:
      GST_INFO_OBJECT (self, "EOS on %s: unpublishing", GST_PAD_NAME (pad));
      GST_OBJECT_LOCK (self);
      t->eos = TRUE;
      GST_OBJECT_UNLOCK (self);
      /* The element ends when all its inputs have (and leaves the call
       * when it stops); an input ending alone is unpublished, a moment
       * later, unless the others follow (as on gst-launch-1.0 -e). */
      if (all_eos (self))
        gst_matrix_rtc_call_bin_finish (self, gst_event_get_seqnum (event));
      else if (t->lk_pad != NULL)
        gst_matrix_rtc_call_bin_run_later (self, 500, unpublish_cb,
            unpublish_data_new (self, t->lk_pad), unpublish_data_free);
      return GST_PAD_PROBE_DROP;
    default:
      break;
  }
  return GST_PAD_PROBE_OK;
}

/* Accept-caps is always checked against the template without its H.264
 * profile (and, once the chain exists, by the chain): streams whose caps
 * name no profile (tsdemux, appsrc, restreamed SRT/HLS/UDP) are accepted,
 * h264parse finds their profile, and build_chain() refuses a named
 * unsupported one with an error that names it, not a bare
 * "not-negotiated". Before the chain exists, caps queries are answered
 * from the template, whose profiles steer encoders to supported ones. */
static gboolean
sink_query (GstPad *pad, GstObject *parent, GstQuery *query)
{
  GstPad *target = gst_ghost_pad_get_target (GST_GHOST_PAD (pad));

  if (GST_QUERY_TYPE (query) == GST_QUERY_ACCEPT_CAPS) {
    GstCaps *caps, *templ = gst_pad_get_pad_template_caps (pad);
    gboolean accepted;
    guint i;

    templ = gst_caps_make_writable (templ);
    for (i = 0; i < gst_caps_get_size (templ); i++)
      gst_structure_remove_field (gst_caps_get_structure (templ, i), "profile");
    gst_query_parse_accept_caps (query, &caps);
    accepted = gst_caps_can_intersect (caps, templ);
    if (accepted && target != NULL)
      accepted = gst_pad_query_accept_caps (target, caps);
    gst_query_set_accept_caps_result (query, accepted);
    gst_caps_unref (templ);
    gst_clear_object (&target);
    return TRUE;
  }
  if (target != NULL) {
    gst_object_unref (target);
    return gst_pad_query_default (pad, parent, query);
  }
  switch (GST_QUERY_TYPE (query)) {
    case GST_QUERY_CAPS: {
      GstCaps *filter, *templ = gst_pad_get_pad_template_caps (pad), *res;

      gst_query_parse_caps (query, &filter);
      res = filter ? gst_caps_intersect_full (
                filter, templ, GST_CAPS_INTERSECT_FIRST)
                   : gst_caps_ref (templ);
      gst_query_set_caps_result (query, res);
      gst_caps_unref (res);
      gst_caps_unref (templ);
      return TRUE;
    }
    default:
      return gst_pad_query_default (pad, parent, query);
  }
}

GstPad *
gst_matrix_rtc_publish_request_pad (GstMatrixRtcCallBin *self,
    GstPadTemplate *templ, const gchar *name, const GstCaps *caps)
{
  PublishState *st = get_state (self);
  GstMatrixRtcLocalTrack *t;
  const gchar *tname = GST_PAD_TEMPLATE_NAME_TEMPLATE (templ);
  gboolean video = g_str_equal (tname, "video_%u");
  g_autofree gchar *pad_name = NULL;
  guint index;

  if (!video && !g_str_equal (tname, "audio_%u"))
    return NULL;
  GST_OBJECT_LOCK (self);
  if (name != NULL
      && sscanf (name, video ? "video_%u" : "audio_%u", &index) == 1)
    pad_name = g_strdup (name);
  else
    pad_name = g_strdup_printf (video ? "video_%u" : "audio_%u",
        video ? st->next_video : st->next_audio);
  if (video)
    st->next_video++;
  else
    st->next_audio++;
  GST_OBJECT_UNLOCK (self);

  t = g_new0 (GstMatrixRtcLocalTrack, 1);
  t->bin = self;
  t->kind = g_strdup (video ? "video" : "audio");
  t->elements = g_ptr_array_new_with_free_func (gst_object_unref);
  t->sinkpad = gst_object_ref (
      gst_ghost_pad_new_no_target_from_template (pad_name, templ));
  gst_pad_set_query_function (t->sinkpad, sink_query);
  gst_pad_add_probe (t->sinkpad, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM,
      sink_event_probe, t, NULL);
  GST_OBJECT_LOCK (self);
  g_ptr_array_add (st->tracks, t);
  GST_OBJECT_UNLOCK (self);
  gst_pad_set_active (t->sinkpad, TRUE);
  gst_element_add_pad (GST_ELEMENT (self), t->sinkpad);
  return t->sinkpad;
}

void
gst_matrix_rtc_publish_release_pad (GstMatrixRtcCallBin *self, GstPad *pad)
{
  PublishState *st = get_state (self);
  GstMatrixRtcLocalTrack *t = NULL;
  guint i;

  GST_OBJECT_LOCK (self);
  for (i = 0; i < st->tracks->len; i++) {
    GstMatrixRtcLocalTrack *c = g_ptr_array_index (st->tracks, i);

    if (c->sinkpad == pad) {
      t = g_ptr_array_steal_index (st->tracks, i);
      break;
    }
  }
  GST_OBJECT_UNLOCK (self);
  if (t == NULL)
    return;
  /* (no connection any more while the element is disposed) */
  if (t->lk_pad != NULL && !t->eos
      && gst_matrix_rtc_call_bin_get_own_connection (self) != NULL)
    lk_connection_remove_track (
        gst_matrix_rtc_call_bin_get_own_connection (self), t->lk_pad);
  for (i = 0; i < t->elements->len; i++) {
    GstElement *e = g_ptr_array_index (t->elements, i);

    gst_element_set_locked_state (e, TRUE);
    gst_element_set_state (e, GST_STATE_NULL);
    /* (the bin's dispose removed them already) */
    if (GST_OBJECT_PARENT (e) == GST_OBJECT (self))
      gst_bin_remove (GST_BIN (self), e);
  }
  gst_pad_set_active (pad, FALSE);
  gst_element_remove_pad (GST_ELEMENT (self), pad);
  local_track_free (t);
}
