/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#ifndef __MRTC_OLM_SLOT_KEY_H__
#define __MRTC_OLM_SLOT_KEY_H__

#include "mrtcolmmachine.h"
#include "mrtcolmslotkeyschedule.h"

G_BEGIN_DECLS

/* Our answer to an m.room_key_request for the Megolm session of a slot key
 * event (an extension: no client answers other users' key requests): the
 * key event's sender sends the key itself, Olm-encrypted, to the
 * requesting device. Content: {"room_id", "event_id", "session_id",
 * "key"}. */
#define MRTC_OLM_SLOT_KEY_FORWARD_TYPE                                         \
  "io.github.gst-matrixrtc.shared_encryption_key"

#define MRTC_OLM_SLOT_KEY_ERROR (mrtc_olm_slot_key_error_quark ())
GQuark mrtc_olm_slot_key_error_quark (void);

/**
 * MrtcOlmSlotKeyError:
 * @MRTC_OLM_SLOT_KEY_ERROR_PERMISSION: our user lacks the power level to
 *   change the slot event (a moderator must rotate)
 * @MRTC_OLM_SLOT_KEY_ERROR_NO_SLOT: the room has no open slot to name the
 *   key from
 * @MRTC_OLM_SLOT_KEY_ERROR_NOT_ENCRYPTED: the room is not encrypted (the
 *   key event must be Megolm-encrypted)
 * @MRTC_OLM_SLOT_KEY_ERROR_STATE: not started, or stopped
 */
typedef enum
{
  MRTC_OLM_SLOT_KEY_ERROR_PERMISSION,
  MRTC_OLM_SLOT_KEY_ERROR_NO_SLOT,
  MRTC_OLM_SLOT_KEY_ERROR_NOT_ENCRYPTED,
  MRTC_OLM_SLOT_KEY_ERROR_STATE,
} MrtcOlmSlotKeyError;

/**
 * MrtcOlmSlotKey:
 *
 * The slot-shared media key of one slot, over an #MrtcOlmMachine: follows
 * the slot state event (state resolution decides which one is current, so
 * concurrent rotations converge), gets the key of the key event it names
 * (from the timeline as the machine decrypts it, else fetched with
 * GET /rooms/{id}/event/{eventId}; without its Megolm session, key
 * requests with back-off) and delivers keys by index; a moderator rotates
 * with mrtc_olm_slot_key_rotate().
 *
 * Create it right after the machine (before the room's events come in:
 * the machine does not hand out a room event twice). Signals are emitted
 * on the machine's worker thread:
 *   key-changed (guint index, GBytes *key, const gchar *event_id): use
 *     @key at @index for sending and receiving from now on;
 *   key-known (guint index, GBytes *key, const gchar *event_id): the key
 *     of a key event the slot does not name yet, sent by a user allowed to
 *     change the slot event and newer than the one named (or by our own
 *     rotation): receivers may accept frames at @index for a grace period
 *     (never send with it before key-changed);
 *   key-expired (guint index, const gchar *event_id): the previous key's
 *     grace period is over;
 *   key-status (guint status, const gchar *event_id, const gchar *message):
 *     an #MrtcOlmSlotKeyStatus and a sentence for a bus message ("waiting
 *     for key event $x").
 * Never logs key bytes.
 */
#define MRTC_OLM_TYPE_SLOT_KEY (mrtc_olm_slot_key_get_type ())
G_DECLARE_FINAL_TYPE (
    MrtcOlmSlotKey, mrtc_olm_slot_key, MRTC_OLM, SLOT_KEY, GObject);

MrtcOlmSlotKey *mrtc_olm_slot_key_new (
    MrtcOlmMachine *machine, const gchar *room_id, const gchar *slot_id);
void mrtc_olm_slot_key_set_grace (MrtcOlmSlotKey *slot_key, gint64 grace_ms);
gint64 mrtc_olm_slot_key_get_grace (MrtcOlmSlotKey *slot_key);
/* Worker thread only (the signal handlers). */
gchar *mrtc_olm_slot_key_dup_reference (MrtcOlmSlotKey *slot_key);
void mrtc_olm_slot_key_set_request_backoff (
    MrtcOlmSlotKey *slot_key, gint64 initial_ms, gint64 max_ms);

/* Blocking (an application thread). */
gboolean mrtc_olm_slot_key_start (MrtcOlmSlotKey *slot_key, GError **error);
gchar *mrtc_olm_slot_key_rotate (MrtcOlmSlotKey *slot_key, GError **error);
void mrtc_olm_slot_key_stop (MrtcOlmSlotKey *slot_key);

/* Thread-safe snapshots. */
GBytes *mrtc_olm_slot_key_lookup (MrtcOlmSlotKey *slot_key, guint index);
GBytes *mrtc_olm_slot_key_get_current (
    MrtcOlmSlotKey *slot_key, guint *index, gchar **event_id);
MrtcOlmSlotKeyStatus mrtc_olm_slot_key_get_status (
    MrtcOlmSlotKey *slot_key, gchar **message);
guint mrtc_olm_slot_key_get_requests_sent (MrtcOlmSlotKey *slot_key);
guint mrtc_olm_slot_key_get_dropped (MrtcOlmSlotKey *slot_key);

G_END_DECLS

#endif /* __MRTC_OLM_SLOT_KEY_H__ */
