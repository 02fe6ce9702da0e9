/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/**
 * SECTION:element-matrixrtcsrc
 * @title: matrixrtcsrc
 * @short_description: receives the media of a MatrixRTC call
 *
 * Joins a MatrixRTC call in a Matrix room and outputs the remote members'
 * media; it publishes nothing.
 *
 * Without #GstMatrixRtcSrc:member, one source pad per remote member and
 * track (`<kind>_<user>_<device>_<source>`, a #GstMatrixRtcPad with the
 * properties user-id, device-id, member-id, kind and source), decoded to
 * raw video and audio (`decode=false`: encoded VP8 / H.264 / Opus), added
 * and removed as members join, leave, publish and unpublish.
 *
 * With #GstMatrixRtcSrc:member (a user id or a member id), two pads
 * `video` and `audio` that are always there and always flowing (raw
 * video of #GstMatrixRtcSrc:width x #GstMatrixRtcSrc:height at 30 fps, and
 * 48 kHz stereo audio): the member's camera and microphone while present,
 * black and silence while absent, so that OBS (obs-gstreamer) and long
 * recordings keep running.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 -e matrixrtcsrc name=call homeserver=http://127.0.0.1:8008 \
 *     user-id=@rec:localhost:8448 password=... room='#call:localhost:8448' \
 *     member=@alice:localhost:8448 \
 *   call.video ! queue ! videoconvert ! vp8enc deadline=1 ! mux. \
 *   call.audio ! queue ! audioconvert ! opusenc ! mux. \
 *   matroskamux name=mux ! filesink location=alice.mkv
 * ]|
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstmatrixrtcsrc.h"
#include "gstmatrixrtcelements.h"

GST_DEBUG_CATEGORY_STATIC (gst_matrix_rtc_src_debug);
#define GST_CAT_DEFAULT gst_matrix_rtc_src_debug

#define DEFAULT_WIDTH 1280
#define DEFAULT_HEIGHT 720

enum
{
  PROP_0,
  PROP_DECODE,
  PROP_MEMBER,
  PROP_WIDTH,
  PROP_HEIGHT,
};

struct _GstMatrixRtcSrc
{
  GstMatrixRtcCallBin parent;

  gchar *member; /* object lock */
  gint width, height;
  gboolean member_pads_made;
  GstElement *compositor, *audiomixer;
  GstElement *video_caps[2]; /* capsfilters before and after the compositor */
  GstMatrixRtcRemoteTrack *shown[2]; /* video, audio (object lock) */
};

G_DEFINE_TYPE_WITH_CODE (GstMatrixRtcSrc, gst_matrix_rtc_src,
    GST_TYPE_MATRIX_RTC_CALL_BIN,
    GST_DEBUG_CATEGORY_INIT (
        gst_matrix_rtc_src_debug, "matrixrtcsrc", 0, "MatrixRTC call source"));
GST_ELEMENT_REGISTER_DEFINE (
    matrixrtcsrc, "matrixrtcsrc", GST_RANK_NONE, GST_TYPE_MATRIX_RTC_SRC);

static GstStaticPadTemplate video_template = GST_STATIC_PAD_TEMPLATE (
    "video", GST_PAD_SRC, GST_PAD_SOMETIMES, GST_STATIC_CAPS ("video/x-raw"));
static GstStaticPadTemplate audio_template = GST_STATIC_PAD_TEMPLATE (
    "audio", GST_PAD_SRC, GST_PAD_SOMETIMES, GST_STATIC_CAPS ("audio/x-raw"));

static GstElement *
add_element (GstMatrixRtcSrc *self, const gchar *factory, const gchar *name)
{
  GstElement *e = gst_element_factory_make (factory, name);

  if (e == NULL) {
    GST_ELEMENT_ERROR (self, CORE, MISSING_PLUGIN,
        ("The element %s is missing", factory), (NULL));
    return NULL;
  }
  gst_bin_add (GST_BIN (self), e);
  return e;
}

static void
ghost_src (GstMatrixRtcSrc *self, GstElement *last, GstStaticPadTemplate *t)
{
  GstPad *target = gst_element_get_static_pad (last, "src");
  GstPad *ghost = gst_ghost_pad_new_from_template (
      t->name_template, target, gst_static_pad_template_get (t));

  gst_object_unref (target);
  gst_pad_set_active (ghost, TRUE);
  gst_element_add_pad (GST_ELEMENT (self), ghost);
}

/* The video pad's caps, all fixed so that the member's arrival does not
 * renegotiate (muxers refuse caps changes). */
static void
apply_size (GstMatrixRtcSrc *self)
{
  GstCaps *caps;
  guint i;

  if (self->video_caps[0] == NULL)
    return;
  caps = gst_caps_new_simple ("video/x-raw", "format", G_TYPE_STRING, "I420",
      "width", G_TYPE_INT, self->width, "height", G_TYPE_INT, self->height,
      "framerate", GST_TYPE_FRACTION, 30, 1, "pixel-aspect-ratio",
      GST_TYPE_FRACTION, 1, 1, "interlace-mode", G_TYPE_STRING, "progressive",
      "colorimetry", G_TYPE_STRING, "bt709", "chroma-site", G_TYPE_STRING,
      "mpeg2", NULL);
  for (i = 0; i < G_N_ELEMENTS (self->video_caps); i++)
    g_object_set (self->video_caps[i], "caps", caps, NULL);
  gst_caps_unref (caps);
}

/* The member pads: black / silence under the member's media. */
static gboolean
make_member_pads (GstMatrixRtcSrc *self)
{
  GstElement *vsrc, *vcaps, *comp, *ocaps, *asrc, *acaps, *mix, *oacaps;
  GstCaps *caps;
  GstPad *pad, *mixpad;

  if (self->member_pads_made)
    return TRUE;
  vsrc = add_element (self, "videotestsrc", "black");
  vcaps = add_element (self, "capsfilter", NULL);
  comp = add_element (self, "compositor", "compositor");
  ocaps = add_element (self, "capsfilter", NULL);
  asrc = add_element (self, "audiotestsrc", "silence");
  acaps = add_element (self, "capsfilter", NULL);
  mix = add_element (self, "audiomixer", "audiomixer");
  oacaps = add_element (self, "capsfilter", NULL);
  if (!vsrc || !vcaps || !comp || !ocaps || !asrc || !acaps || !mix || !oacaps)
    return FALSE;
  g_object_set (vsrc, "is-live", TRUE, "pattern", 2 /* black */, NULL);
  self->video_caps[0] = vcaps;
  self->video_caps[1] = ocaps;
  apply_size (self);
  g_object_set (comp, "background", 1 /* black */, "latency",
      (guint64)(300 * GST_MSECOND), NULL);
  g_object_set (asrc, "is-live", TRUE, "wave", 4 /* silence */,
      "samplesperbuffer", 960, NULL);
  caps = gst_caps_from_string (
      "audio/x-raw,format=S16LE,rate=48000,channels=2,layout=interleaved");
  g_object_set (acaps, "caps", caps, NULL);
  g_object_set (oacaps, "caps", caps, NULL);
  gst_caps_unref (caps);
  g_object_set (mix, "latency", (guint64)(300 * GST_MSECOND), NULL);
  if (!gst_element_link (vsrc, vcaps) || !gst_element_link (asrc, acaps)
      || !gst_element_link (comp, ocaps) || !gst_element_link (mix, oacaps))
    return FALSE;
  pad = gst_element_get_static_pad (vcaps, "src");
  mixpad = gst_element_request_pad_simple (comp, "sink_%u");
  g_object_set (mixpad, "zorder", 0, NULL);
  gst_pad_link (pad, mixpad);
  gst_object_unref (pad);
  gst_object_unref (mixpad);
  pad = gst_element_get_static_pad (acaps, "src");
  mixpad = gst_element_request_pad_simple (mix, "sink_%u");
  gst_pad_link (pad, mixpad);
  gst_object_unref (pad);
  gst_object_unref (mixpad);
  ghost_src (self, ocaps, &video_template);
  ghost_src (self, oacaps, &audio_template);
  self->compositor = comp;
  self->audiomixer = mix;
  self->member_pads_made = TRUE;
  return TRUE;
}

static gboolean
gst_matrix_rtc_src_accept_track (GstMatrixRtcCallBin *call,
    GstMatrixRtcRemoteTrack *track, MrtcMember *member)
{
  GstMatrixRtcSrc *self = GST_MATRIX_RTC_SRC (call);
  gboolean accept = TRUE;
  guint slot = g_str_equal (track->kind, "video") ? 0 : 1;

  GST_OBJECT_LOCK (self);
  if (self->member != NULL) {
    accept = (g_strcmp0 (member->user_id, self->member) == 0
                 || g_strcmp0 (member->member_id, self->member) == 0)
             && self->shown[slot] == NULL
             && g_strcmp0 (track->source, "screen_share") != 0
             && g_strcmp0 (track->source, "screen_share_audio") != 0;
    if (accept)
      self->shown[slot] = gst_matrix_rtc_remote_track_ref (track);
  }
  GST_OBJECT_UNLOCK (self);
  return accept;
}

static void
gst_matrix_rtc_src_track_exposed (
    GstMatrixRtcCallBin *call, GstMatrixRtcRemoteTrack *track, GstPad *src)
{
  GstMatrixRtcSrc *self = GST_MATRIX_RTC_SRC (call);
  gboolean video = g_str_equal (track->kind, "video");
  GPtrArray *extra;
  GstElement *conv, *resample = NULL;
  GstPad *mixpad, *pad;

  if (!self->member_pads_made) {
    gst_matrix_rtc_receive_add_pad (call, track, src);
    return;
  }
  /* Into the compositor / mixer, over the black / silence. */
  extra = g_ptr_array_new_with_free_func (gst_object_unref);
  conv = gst_element_factory_make (
      video ? "videoconvert" : "audioconvert", NULL);
  g_ptr_array_add (extra, gst_object_ref (conv));
  gst_bin_add (GST_BIN (self), conv);
  if (!video) {
    resample = gst_element_factory_make ("audioresample", NULL);
    g_ptr_array_add (extra, gst_object_ref (resample));
    gst_bin_add (GST_BIN (self), resample);
    gst_element_link (conv, resample);
  }
  pad = gst_element_get_static_pad (conv, "sink");
  gst_pad_link (src, pad);
  gst_object_unref (pad);
  mixpad = gst_element_request_pad_simple (
      video ? self->compositor : self->audiomixer, "sink_%u");
  if (video) {
    g_object_set (mixpad, "zorder", 1, "width", self->width, "height",
        self->height, NULL);
    if (g_object_class_find_property (
            G_OBJECT_GET_CLASS (mixpad), "sizing-policy"))
      gst_util_set_object_arg (
          G_OBJECT (mixpad), "sizing-policy", "keep-aspect-ratio");
  }
  pad = gst_element_get_static_pad (resample ? resample : conv, "src");
  gst_pad_link (pad, mixpad);
  gst_object_unref (pad);
  gst_element_sync_state_with_parent (conv);
  if (resample)
    gst_element_sync_state_with_parent (resample);
  track->out_pad = mixpad;
  track->out_data = extra;
  GST_INFO_OBJECT (self, "showing %s's %s", track->identity, track->kind);
}

static void
gst_matrix_rtc_src_track_hidden (
    GstMatrixRtcCallBin *call, GstMatrixRtcRemoteTrack *track)
{
  GstMatrixRtcSrc *self = GST_MATRIX_RTC_SRC (call);
  GPtrArray *extra = track->out_data;
  guint i;

  GST_OBJECT_LOCK (self);
  for (i = 0; i < G_N_ELEMENTS (self->shown); i++) {
    if (self->shown[i] == track) {
      gst_matrix_rtc_remote_track_unref (track);
      self->shown[i] = NULL;
    }
  }
  GST_OBJECT_UNLOCK (self);
  if (extra == NULL) {
    gst_matrix_rtc_receive_remove_pad (call, track);
    return;
  }
  track->out_data = NULL;
  for (i = 0; i < extra->len; i++) {
    GstElement *e = g_ptr_array_index (extra, i);

    gst_element_set_locked_state (e, TRUE);
    gst_element_set_state (e, GST_STATE_NULL);
    gst_bin_remove (GST_BIN (self), e);
  }
  g_ptr_array_unref (extra);
  if (track->out_pad != NULL) {
    GstElement *mixer = gst_pad_get_parent_element (track->out_pad);

    if (mixer != NULL) {
      gst_element_release_request_pad (mixer, track->out_pad);
      gst_object_unref (mixer);
    }
    gst_clear_object (&track->out_pad);
  }
}

static void
gst_matrix_rtc_src_set_property (
    GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec)
{
  GstMatrixRtcSrc *self = GST_MATRIX_RTC_SRC (object);

  switch (prop_id) {
    case PROP_DECODE:
      gst_matrix_rtc_call_bin_set_decode (
          GST_MATRIX_RTC_CALL_BIN (self), g_value_get_boolean (value));
      break;
    case PROP_MEMBER:
      GST_OBJECT_LOCK (self);
      if (self->member_pads_made) {
        GST_OBJECT_UNLOCK (self);
        GST_WARNING_OBJECT (self, "member can only be set once");
        break;
      }
      g_free (self->member);
      self->member = g_value_dup_string (value);
      GST_OBJECT_UNLOCK (self);
      /* The pads exist as soon as the member is known, for gst-launch. */
      if (self->member != NULL && *self->member != '\0') {
        gst_matrix_rtc_call_bin_set_decode (
            GST_MATRIX_RTC_CALL_BIN (self), TRUE);
        make_member_pads (self);
      }
      break;
    case PROP_WIDTH:
      self->width = g_value_get_int (value);
      apply_size (self);
      break;
    case PROP_HEIGHT:
      self->height = g_value_get_int (value);
      apply_size (self);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_matrix_rtc_src_get_property (
    GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  GstMatrixRtcSrc *self = GST_MATRIX_RTC_SRC (object);

  switch (prop_id) {
    case PROP_DECODE:
      g_value_set_boolean (value,
          gst_matrix_rtc_call_bin_get_decode (GST_MATRIX_RTC_CALL_BIN (self)));
      break;
    case PROP_MEMBER:
      GST_OBJECT_LOCK (self);
      g_value_set_string (value, self->member);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_WIDTH:
      g_value_set_int (value, self->width);
      break;
    case PROP_HEIGHT:
      g_value_set_int (value, self->height);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_matrix_rtc_src_finalize (GObject *object)
{
  GstMatrixRtcSrc *self = GST_MATRIX_RTC_SRC (object);
  guint i;

  for (i = 0; i < G_N_ELEMENTS (self->shown); i++)
    g_clear_pointer (&self->shown[i], gst_matrix_rtc_remote_track_unref);
  g_free (self->member);
  G_OBJECT_CLASS (gst_matrix_rtc_src_parent_class)->finalize (object);
}

static void
gst_matrix_rtc_src_class_init (GstMatrixRtcSrcClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstMatrixRtcCallBinClass *call_class = GST_MATRIX_RTC_CALL_BIN_CLASS (klass);
  const GParamFlags rw
      = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY;

  gobject_class->set_property = gst_matrix_rtc_src_set_property;
  gobject_class->get_property = gst_matrix_rtc_src_get_property;
  gobject_class->finalize = gst_matrix_rtc_src_finalize;
  call_class->can_publish = FALSE;
  call_class->can_receive = TRUE;
  call_class->accept_track = gst_matrix_rtc_src_accept_track;
  call_class->track_exposed = gst_matrix_rtc_src_track_exposed;
  call_class->track_hidden = gst_matrix_rtc_src_track_hidden;

  /**
   * GstMatrixRtcSrc:decode:
   *
   * Decode remote media to raw video and audio; FALSE outputs the decrypted
   * encoded frames (VP8 / H.264 / Opus). Always TRUE with #GstMatrixRtcSrc:member.
   */
  g_object_class_install_property (gobject_class, PROP_DECODE,
      g_param_spec_boolean ("decode", "Decode",
          "Output raw video and audio (FALSE: encoded frames)", TRUE, rw));
  /**
   * GstMatrixRtcSrc:member:
   *
   * Follow one member (a Matrix user id, or a MatrixRTC member id) on two
   * always-present pads `video` and `audio`, black and silent while the
   * member is absent. Set it before the element leaves the NULL state.
   */
  g_object_class_install_property (gobject_class, PROP_MEMBER,
      g_param_spec_string ("member", "Member",
          "User id or member id to follow on the always-present video and "
          "audio pads (black and silence while absent)",
          NULL, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_WIDTH,
      g_param_spec_int ("width", "Width", "Width of the video pad with member",
          16, 7680, DEFAULT_WIDTH, rw));
  g_object_class_install_property (gobject_class, PROP_HEIGHT,
      g_param_spec_int ("height", "Height",
          "Height of the video pad with member", 16, 4320, DEFAULT_HEIGHT, rw));

  gst_element_class_add_pad_template (
      element_class, gst_matrix_rtc_receive_src_template (TRUE));
  gst_element_class_add_static_pad_template (element_class, &video_template);
  gst_element_class_add_static_pad_template (element_class, &audio_template);
  gst_element_class_set_static_metadata (element_class, "MatrixRTC call source",
      "Source/Network/RTC",
      "Receives the members' media of a MatrixRTC call (Element Call), "
      "decrypted and decoded",
      "The gst-matrixrtc authors");
}

static void
gst_matrix_rtc_src_init (GstMatrixRtcSrc *self)
{
  self->width = DEFAULT_WIDTH;
  self->height = DEFAULT_HEIGHT;
  gst_matrix_rtc_call_bin_set_decode (GST_MATRIX_RTC_CALL_BIN (self), TRUE);
  GST_OBJECT_FLAG_SET (self, GST_ELEMENT_FLAG_SOURCE);
}
