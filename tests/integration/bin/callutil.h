/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#ifndef __MATRIXRTC_CALL_UTIL_H__
#define __MATRIXRTC_CALL_UTIL_H__

/* Helpers of the call element tests: fresh users and rooms on the local
 * Synapse, pipelines around matrixrtcbin / matrixrtcsrc / matrixrtcsink
 * that publish SMPTE bars and a sine, and per-member counters of what the
 * remote pads deliver (decoded frames showing the bars, audio buffers). */

#include <gst/check/gstcheck.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define CALL_WIDTH 320
#define CALL_HEIGHT 240

typedef struct
{
  gint video_frames;
  gint video_good;  /* frames showing the SMPTE bars */
  gint video_black; /* frames that are all black (matrixrtcsrc member) */
  gint video_split; /* frames left half red, right half blue (Node peers) */
  gint audio_buffers;
  gint pads_added, pads_removed;
  gint64 first_video_us; /* monotonic time of the first decoded frame */
} MemberCounts;

typedef struct
{
  GstElement *pipeline;
  GstElement *call;
  gchar *user_id;
  GMutex lock;
  GHashTable *counts; /* user id ("" for member pads) -> MemberCounts */
  gint members_joined, members_left;
} CallPeer;

/* A fresh user (password in @password). */
/* A JSON request to the homeserver (@path under MATRIXRTC_HS_URL, @token
 * and @body optional): fails the test unless the status is @expect_status
 * and the reply a JSON object, which it returns. */
JsonObject *call_http_json (const gchar *method, const gchar *path,
    const gchar *token, const gchar *body, guint expect_status);
/* Lets the tests run through a known GStreamer 1.22 webrtcbin critical
 * (jitter_buffer_set_retransmission, "code should not be reached", when a
 * jitter buffer's transceiver is not found yet): not ours, and harmless.
 * Call it from the suite function (after gst_check_init()). */
void call_filter_known_warnings (void);
gchar *call_register_user (const gchar *prefix, gchar **password);
/* A public room created by @user_id; returns its id. */
gchar *call_create_room (const gchar *user_id, const gchar *password);

/* A pipeline with @factory logged in as a fresh user, in @room_id, with the
 * transport @token_service; publishing bars and a sine when the element
 * has request pads and @publish. */
CallPeer *call_peer_new (const gchar *factory, const gchar *prefix,
    const gchar *room_id, const gchar *token_service, gboolean publish,
    const gchar *first_property, ...);
void call_peer_start (CallPeer *peer);
void call_peer_free (CallPeer *peer);

/* A copy of the counters of @user_id ("" for matrixrtcsrc member pads). */
MemberCounts call_peer_counts (CallPeer *peer, const gchar *user_id);
/* Fails the test on an error message of any pipeline (NULL-terminated). */
void call_check_bus (CallPeer *peer);

#define CALL_WAIT(cond, seconds, ...)                                          \
  G_STMT_START                                                                 \
  {                                                                            \
    gint64 _end = g_get_monotonic_time () + (seconds)*G_USEC_PER_SEC;          \
    CallPeer *_peers[] = { __VA_ARGS__, NULL };                                \
    while (!(cond) && g_get_monotonic_time () < _end) {                        \
      for (guint _i = 0; _peers[_i] != NULL; _i++)                             \
        call_check_bus (_peers[_i]);                                           \
      g_usleep (100 * 1000);                                                   \
    }                                                                          \
  }                                                                            \
  G_STMT_END

G_END_DECLS

#endif /* __MATRIXRTC_CALL_UTIL_H__ */
