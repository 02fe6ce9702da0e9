/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#ifndef __LK_TEST_UTIL_H__
#define __LK_TEST_UTIL_H__

/* Helpers shared by the LiveKit integration and interop tests: our
 * publisher's test media (SMPTE bars VP8 + sine Opus), decoding chains for
 * the subscriber's tracks that count and check frames, and waiting. */

#include <gst/check/gstcheck.h>
#include "lkconnection.h"

G_BEGIN_DECLS

#define WIDTH 320
#define HEIGHT 240

typedef struct
{
  GstElement *pipeline;
  gint video_frames; /* decoded frames */
  gint video_good;   /* decoded frames showing the SMPTE bars */
  gint audio_buffers;
  gint tracks;
  gint encrypted_tracks;
  gint64 last_video_us;
  gint64 first_video_us;
  GMutex lock;
  GHashTable *sent_frames;    /* checksums of frames sent (encrypted test) */
  const gchar *only_identity; /* take only this publisher's tracks */
  gboolean split_pattern;     /* expect left red / right blue, not bars */
  const gchar *e2ee_key;      /* encrypt with matrixrtcframeenc (hex key) */
  gint frames_matched, frames_unmatched;
} Media;

gchar *lkt_random_room (const gchar *prefix);
LkConnection *lkt_make_connection (const gchar *name, const gchar *url,
    const gchar *key, const gchar *secret, const gchar *identity,
    const gchar *room);
void lkt_on_track_added (LkConnection *conn, const gchar *identity,
    const gchar *participant_sid, const gchar *track_sid, const gchar *source,
    const gchar *kind, gboolean encrypted, GstPad *pad, Media *m);
void lkt_add_publisher_media (GstElement *pipeline, LkConnection *pub,
    gboolean with_audio, gboolean encrypted, Media *m);
void lkt_check_bus (GstElement *pipeline);
void lkt_media_init (Media *m, GstElement *pipeline);
void lkt_media_clear (Media *m);
void lkt_stop_pipeline (GstElement *pipeline);

/* Waits until @cond holds (polling), at most @seconds. */
#define WAIT_FOR(pipeline, cond, seconds)                                      \
  G_STMT_START                                                                 \
  {                                                                            \
    gint64 _end = g_get_monotonic_time () + (seconds)*G_USEC_PER_SEC;          \
    while (!(cond) && g_get_monotonic_time () < _end) {                        \
      lkt_check_bus (pipeline);                                                \
      while (g_main_context_iteration (NULL, FALSE))                           \
        ;                                                                      \
      g_usleep (50 * 1000);                                                    \
    }                                                                          \
  }                                                                            \
  G_STMT_END

G_END_DECLS

#endif /* __LK_TEST_UTIL_H__ */
