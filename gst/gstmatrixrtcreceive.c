/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* Remote tracks of the call: for each track of a present member, a chain
 * depayloader ! [matrixrtcframedec] ! [parser ! decoder] inside the bin,
 * and an output pad named from the member's Matrix identity. Tracks are
 * shown while their publisher is a member (the membership decides) and
 * hidden when it leaves or unpublishes; the connection's pad itself is
 * stable across reconnects, so our pad is too. */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <string.h>

#include "gstmatrixrtccallbin.h"
#include "gstmatrixrtcpad.h"

GST_DEBUG_CATEGORY_EXTERN (gst_matrix_rtc_call_bin_debug);
#define GST_CAT_DEFAULT gst_matrix_rtc_call_bin_debug

MrtcMember *gst_matrix_rtc_call_bin_lookup_member (
    GstMatrixRtcCallBin *self, const gchar *identity);

#define ENCODED_VIDEO_CAPS "video/x-vp8; video/x-h264; video/x-vp9"
#define ENCODED_AUDIO_CAPS "audio/x-opus"

GstPadTemplate *
gst_matrix_rtc_receive_src_template (gboolean decoded)
{
  /* One template for both kinds: pads are named
   * <kind>_<user>_<device>_<source>. */
  return gst_pad_template_new_with_gtype ("src_%s", GST_PAD_SRC,
      GST_PAD_SOMETIMES,
      gst_caps_from_string (decoded ? "video/x-raw; audio/x-raw"
                                    : ENCODED_VIDEO_CAPS
                                "; " ENCODED_AUDIO_CAPS),
      GST_TYPE_MATRIX_RTC_PAD);
}

static gchar *
sanitize (const gchar *s)
{
  gchar *out = g_strdup (s ? (s[0] == '@' ? s + 1 : s) : "unknown");
  gchar *p;

  for (p = out; *p != '\0'; p++) {
    if (!g_ascii_isalnum (*p) && *p != '-')
      *p = '_';
  }
  return out;
}

static GstElement *
make (GPtrArray *elements, const gchar *factory)
{
  GstElement *e = gst_element_factory_make (factory, NULL);

  if (e != NULL)
    g_ptr_array_add (elements, gst_object_ref_sink (e));
  return e;
}

static GstElement *
make_first (GPtrArray *elements, const gchar *const *factories)
{
  for (; *factories != NULL; factories++) {
    GstElement *e = make (elements, *factories);

    if (e != NULL)
      return e;
  }
  return NULL;
}

/* Upstream GstForceKeyUnit: rtpsession turns it into a PLI, so that a
 * newly linked pad starts with a key frame. */
static void
request_key_frame (GstPad *pad)
{
  GstEvent *event = gst_event_new_custom (GST_EVENT_CUSTOM_UPSTREAM,
      gst_structure_new (
          "GstForceKeyUnit", "all-headers", G_TYPE_BOOLEAN, TRUE, NULL));

  gst_pad_send_event (pad, event);
}

static void
on_out_pad_linked (GstPad *pad, GstPad *peer, gpointer user_data)
{
  GstMatrixRtcRemoteTrack *track = user_data;

  if (g_str_equal (track->kind, "video") && track->chain_src != NULL)
    request_key_frame (track->chain_src);
}

/* Builds the middle of the chain for the RTP @caps: depayloader,
 * [matrixrtcframedec], [parser and decoder]; FALSE when an element is
 * missing. */
static gboolean
build_middle (GstMatrixRtcCallBin *self, GstMatrixRtcRemoteTrack *track,
    const GstCaps *caps, GstElement *head, GstElement *tail)
{
  static const gchar *const h264_decoders[]
      = { "openh264dec", "avdec_h264", NULL };
  GstMatrixRtcMediaConfig config;
  const gchar *name = NULL;
  g_autofree gchar *encoding = NULL;
  GPtrArray *elements = g_ptr_array_new_with_free_func (gst_object_unref);
  GstElement *depay = NULL, *parse = NULL, *dec = NULL, *fdec = NULL;
  gboolean video = g_str_equal (track->kind, "video"), ok = TRUE;
  guint i;

  if (caps != NULL && gst_caps_get_size (caps) > 0)
    name = gst_structure_get_string (
        gst_caps_get_structure (caps, 0), "encoding-name");
  encoding
      = name ? g_ascii_strup (name, -1) : g_strdup (video ? "VP8" : "OPUS");
  gst_matrix_rtc_call_bin_get_media_config (self, &config);
  if (!video) {
    depay = make (elements, "rtpopusdepay");
    if (config.decode)
      dec = make (elements, "opusdec");
  } else if (g_str_equal (encoding, "H264")) {
    depay = make (elements, "rtph264depay");
    if (config.decode) {
      parse = make (elements, "h264parse");
      dec = make_first (elements, h264_decoders);
    }
  } else if (g_str_equal (encoding, "VP9")) {
    depay = make (elements, "rtpvp9depay");
    if (config.decode)
      dec = make (elements, "vp9dec");
  } else {
    depay = make (elements, "rtpvp8depay");
    if (config.decode)
      dec = make (elements, "vp8dec");
  }
  if (depay == NULL || (config.decode && dec == NULL)) {
    GST_ELEMENT_WARNING (self, CORE, MISSING_PLUGIN,
        ("No depayloader or decoder for a %s track (%s)", track->kind,
            encoding),
        (NULL));
    ok = FALSE;
    goto out;
  }
  if (video
      && g_object_class_find_property (
          G_OBJECT_GET_CLASS (depay), "request-keyframe"))
    g_object_set (
        depay, "request-keyframe", TRUE, "wait-for-keyframe", TRUE, NULL);
  if (dec != NULL
      && g_object_class_find_property (G_OBJECT_GET_CLASS (dec), "max-errors"))
    g_object_set (dec, "max-errors", -1, NULL);
  /* In an encrypted call every track is decrypted, whatever the SFU says
   * of it (a track it marks unencrypted would otherwise show its clear
   * media as the member's): what does not decrypt is dropped and
   * counted. */
  if (track->encrypted || config.encrypt) {
    fdec = make (elements, "matrixrtcframedec");
    if (fdec == NULL) {
      ok = FALSE;
      goto out;
    }
    if (config.passphrase != NULL) {
      g_object_set (fdec, "passphrase", config.passphrase, NULL);
    } else {
      /* Visible to key changes (dup_framedecs) before its keys are
       * applied: a change in between reaches it (keys are set under the
       * keys' lock on both sides). */
      track->framedec = gst_object_ref (fdec);
      gst_matrix_rtc_keys_apply_remote (self, track->identity, fdec);
    }
  }

  for (i = 0; i < elements->len; i++)
    gst_bin_add (GST_BIN (self), g_ptr_array_index (elements, i));
  {
    GstElement *order[] = { head, depay, fdec, parse, dec, tail };
    GstElement *prev = NULL;

    for (i = 0; i < G_N_ELEMENTS (order); i++) {
      if (order[i] == NULL)
        continue;
      if (prev != NULL && !gst_element_link (prev, order[i])) {
        GST_ELEMENT_WARNING (self, CORE, NEGOTIATION,
            ("Could not link %s to %s for a %s track (%s)",
                GST_OBJECT_NAME (prev), GST_OBJECT_NAME (order[i]), track->kind,
                encoding),
            (NULL));
        ok = FALSE;
      }
      prev = order[i];
    }
  }
  for (i = elements->len; i > 0; i--)
    gst_element_sync_state_with_parent (g_ptr_array_index (elements, i - 1));
  GST_INFO_OBJECT (self, "%s track of %s: %s%s%s", track->kind, track->identity,
      encoding, track->encrypted ? ", encrypted" : "",
      config.decode ? ", decoded" : "");
  if (fdec != NULL && track->framedec == NULL)
    track->framedec = gst_object_ref (fdec);
  for (i = 0; i < elements->len; i++)
    g_ptr_array_add (
        track->elements, gst_object_ref (g_ptr_array_index (elements, i)));

out:
  gst_matrix_rtc_media_config_clear (&config);
  g_ptr_array_unref (elements);
  return ok;
}

typedef struct
{
  GstMatrixRtcRemoteTrack *track;
  GstElement *head, *tail;
} MiddleData;

static void
middle_data_free (MiddleData *d)
{
  gst_matrix_rtc_remote_track_unref (d->track);
  gst_object_unref (d->head);
  gst_object_unref (d->tail);
  g_free (d);
}

/* The codec is known from the first caps: build the middle then. */
static GstPadProbeReturn
head_caps_probe (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  MiddleData *d = user_data;
  GstEvent *event = GST_PAD_PROBE_INFO_EVENT (info);
  GstCaps *caps;

  if (GST_EVENT_TYPE (event) != GST_EVENT_CAPS)
    return GST_PAD_PROBE_OK;
  gst_event_parse_caps (event, &caps);
  if (d->track->elements == NULL || d->track->bin == NULL)
    return GST_PAD_PROBE_REMOVE;
  build_middle (d->track->bin, d->track, caps, d->head, d->tail);
  return GST_PAD_PROBE_REMOVE;
}

/* The fixed ends of a track's chain, linked to the connection's pad and
 * to the output at once; the middle follows from the first caps. */
static gboolean
build_chain (GstMatrixRtcCallBin *self, GstMatrixRtcRemoteTrack *track)
{
  GPtrArray *elements = g_ptr_array_new_with_free_func (gst_object_unref);
  GstElement *head = make (elements, "identity");
  GstElement *tail = make (elements, "identity");
  MiddleData *d;
  GstPad *src;
  guint i;

  if (head == NULL || tail == NULL) {
    g_ptr_array_unref (elements);
    return FALSE;
  }
  for (i = 0; i < elements->len; i++)
    gst_bin_add (GST_BIN (self), g_ptr_array_index (elements, i));
  track->elements = elements;
  track->chain_sink = gst_element_get_static_pad (head, "sink");
  track->chain_src = gst_element_get_static_pad (tail, "src");
  d = g_new0 (MiddleData, 1);
  d->track = gst_matrix_rtc_remote_track_ref (track);
  d->head = gst_object_ref (head);
  d->tail = gst_object_ref (tail);
  src = gst_element_get_static_pad (head, "src");
  gst_pad_add_probe (src, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, head_caps_probe,
      d, (GDestroyNotify)middle_data_free);
  gst_object_unref (src);
  gst_element_sync_state_with_parent (tail);
  gst_element_sync_state_with_parent (head);
  return TRUE;
}

static void
teardown_chain (GstMatrixRtcCallBin *self, GstMatrixRtcRemoteTrack *track)
{
  GPtrArray *elements = track->elements;
  guint i;

  track->elements = NULL;
  gst_clear_object (&track->chain_sink);
  gst_clear_object (&track->chain_src);
  gst_clear_object (&track->framedec);
  if (elements == NULL)
    return;
  for (i = 0; i < elements->len; i++) {
    GstElement *e = g_ptr_array_index (elements, i);

    gst_element_set_locked_state (e, TRUE);
    gst_element_set_state (e, GST_STATE_NULL);
    if (GST_OBJECT_PARENT (e) == GST_OBJECT (self))
      gst_bin_remove (GST_BIN (self), e);
  }
  g_ptr_array_unref (elements);
}

void
gst_matrix_rtc_receive_expose (
    GstMatrixRtcCallBin *self, GstMatrixRtcRemoteTrack *track)
{
  GstMatrixRtcCallBinClass *klass = GST_MATRIX_RTC_CALL_BIN_GET_CLASS (self);
  MrtcMember *member;

  GST_OBJECT_LOCK (self);
  if (track->exposed || track->removed || track->busy) {
    GST_OBJECT_UNLOCK (self);
    return;
  }
  track->busy = TRUE;
  GST_OBJECT_UNLOCK (self);

  member = gst_matrix_rtc_call_bin_lookup_member (self, track->identity);
  if (member == NULL)
    goto done;
  if (klass->accept_track != NULL
      && !klass->accept_track (self, track, member)) {
    GST_DEBUG_OBJECT (self, "not showing the %s %s track of %s", track->source,
        track->kind, member->user_id);
    mrtc_member_unref (member);
    goto done;
  }
  if (!build_chain (self, track)) {
    mrtc_member_unref (member);
    goto done;
  }
  g_clear_pointer (&track->member, mrtc_member_unref);
  track->member = member;
  klass->track_exposed (self, track, track->chain_src);
  if (gst_pad_link (track->lk_pad, track->chain_sink) != GST_PAD_LINK_OK)
    GST_ERROR_OBJECT (self, "could not link the track of %s", track->identity);
  g_atomic_int_set (&track->exposed, TRUE);
  gst_matrix_rtc_call_bin_count (self, "remote-tracks-shown-total");
  GST_INFO_OBJECT (self, "showing the %s %s track of %s (%s)", track->source,
      track->kind, member->user_id, member->member_id);
  if (g_str_equal (track->kind, "video"))
    request_key_frame (track->chain_src);

done:
  GST_OBJECT_LOCK (self);
  track->busy = FALSE;
  GST_OBJECT_UNLOCK (self);
}

typedef struct
{
  gint refcount;
  GstMatrixRtcRemoteTrack *track;
  GMutex lock;
  GCond cond;
  gboolean done;
} HideData;

static void
hide_data_unref (HideData *d)
{
  if (!g_atomic_int_dec_and_test (&d->refcount))
    return;
  gst_matrix_rtc_remote_track_unref (d->track);
  g_mutex_clear (&d->lock);
  g_cond_clear (&d->cond);
  g_free (d);
}

static GstPadProbeReturn
hide_idle_probe (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  HideData *d = user_data;

  g_mutex_lock (&d->lock);
  if (!d->done) {
    g_atomic_int_set (&d->track->exposed, FALSE);
    if (d->track->chain_sink != NULL)
      gst_pad_unlink (d->track->lk_pad, d->track->chain_sink);
    d->done = TRUE;
    g_cond_signal (&d->cond);
  }
  g_mutex_unlock (&d->lock);
  return GST_PAD_PROBE_REMOVE;
}

void
gst_matrix_rtc_receive_hide (
    GstMatrixRtcCallBin *self, GstMatrixRtcRemoteTrack *track)
{
  GstMatrixRtcCallBinClass *klass = GST_MATRIX_RTC_CALL_BIN_GET_CLASS (self);
  HideData *d;
  gulong id;
  gint64 end;

  if (!g_atomic_int_get (&track->exposed))
    return;
  d = g_new0 (HideData, 1);
  d->refcount = 2;
  d->track = gst_matrix_rtc_remote_track_ref (track);
  g_mutex_init (&d->lock);
  g_cond_init (&d->cond);
  /* Wait until no buffer is on its way through the chain (bounded: a
   * stalled pad is unlinked anyway). */
  id = gst_pad_add_probe (track->lk_pad, GST_PAD_PROBE_TYPE_IDLE,
      hide_idle_probe, d, (GDestroyNotify)hide_data_unref);
  end = g_get_monotonic_time () + G_USEC_PER_SEC;
  g_mutex_lock (&d->lock);
  while (!d->done && g_cond_wait_until (&d->cond, &d->lock, end))
    ;
  if (!d->done) {
    GST_WARNING_OBJECT (
        self, "the track of %s did not go idle", track->identity);
    d->done = TRUE;
    g_atomic_int_set (&track->exposed, FALSE);
    if (track->chain_sink != NULL)
      gst_pad_unlink (track->lk_pad, track->chain_sink);
  }
  g_mutex_unlock (&d->lock);
  if (id != 0)
    gst_pad_remove_probe (track->lk_pad, id);
  hide_data_unref (d);

  klass->track_hidden (self, track);
  teardown_chain (self, track);
  g_clear_pointer (&track->member, mrtc_member_unref);
  GST_INFO_OBJECT (self, "hid the %s %s track of %s", track->source,
      track->kind, track->identity);
}

void
gst_matrix_rtc_receive_add_pad (
    GstMatrixRtcCallBin *self, GstMatrixRtcRemoteTrack *track, GstPad *src)
{
  GstElementClass *klass = GST_ELEMENT_GET_CLASS (self);
  MrtcMember *m = track->member;
  g_autofree gchar *user = sanitize (m->user_id);
  g_autofree gchar *device = sanitize (m->device_id);
  g_autofree gchar *source = sanitize (track->source);
  g_autofree gchar *name
      = g_strdup_printf ("%s_%s_%s_%s", track->kind, user, device, source);
  GstPadTemplate *templ = gst_element_class_get_pad_template (klass, "src_%s");
  GstPad *pad;

  pad = gst_matrix_rtc_pad_new (name, templ, m->user_id, m->device_id,
      m->member_id, track->kind, track->source);
  gst_ghost_pad_set_target (GST_GHOST_PAD (pad), src);
  g_signal_connect_data (pad, "linked", G_CALLBACK (on_out_pad_linked),
      gst_matrix_rtc_remote_track_ref (track),
      (GClosureNotify)(void (*) (void))gst_matrix_rtc_remote_track_unref, 0);
  gst_pad_set_active (pad, TRUE);
  track->out_pad = gst_object_ref (pad);
  if (!gst_element_add_pad (GST_ELEMENT (self), pad)) {
    GST_WARNING_OBJECT (self, "a pad named %s exists already", name);
    gst_clear_object (&track->out_pad);
  }
}

void
gst_matrix_rtc_receive_remove_pad (
    GstMatrixRtcCallBin *self, GstMatrixRtcRemoteTrack *track)
{
  GstPad *pad = track->out_pad;

  track->out_pad = NULL;
  if (pad == NULL)
    return;
  gst_pad_set_active (pad, FALSE);
  gst_element_remove_pad (GST_ELEMENT (self), pad);
  gst_object_unref (pad);
}
