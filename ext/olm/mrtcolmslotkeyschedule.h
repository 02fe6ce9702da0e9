/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#ifndef __MRTC_OLM_SLOT_KEY_SCHEDULE_H__
#define __MRTC_OLM_SLOT_KEY_SCHEDULE_H__

#include "mrtcolmmediakeys.h"

G_BEGIN_DECLS

/* The slot-shared media key (the seed's "shared key" mode, MSC4143 draft of
 * 2026-07-07): a Megolm-encrypted room event whose content is
 * {"key": "<base64 of 16 random bytes>"}, named by the slot state event's
 * application["m.shared_key_event"]. */
#define MRTC_OLM_SLOT_KEY_EVENT_TYPE                                           \
  "org.matrix.msc4143.rtc.shared_encryption_key"
#define MRTC_OLM_SLOT_KEY_EVENT_TYPE_STABLE "m.rtc.shared_encryption_key"
#define MRTC_OLM_SLOT_KEY_REFERENCE "m.shared_key_event"
#define MRTC_OLM_SLOT_EVENT_TYPE "org.matrix.msc4143.rtc.slot"
#define MRTC_OLM_SLOT_EVENT_TYPE_STABLE "m.rtc.slot"
#define MRTC_OLM_SLOT_KEY_LEN 16
/* How long the previous key stays usable for frames in flight. */
#define MRTC_OLM_SLOT_KEY_DEFAULT_GRACE_MS 10000
/* Back-off of the key requests while the named key cannot be decrypted. */
#define MRTC_OLM_SLOT_KEY_REQUEST_INITIAL_MS 500
#define MRTC_OLM_SLOT_KEY_REQUEST_MAX_MS 30000
/* Keys of other key events kept (a slot may name one of them later). */
#define MRTC_OLM_SLOT_KEY_MAX_KNOWN 64

/**
 * MrtcOlmSlotKeyStatus:
 * @MRTC_OLM_SLOT_KEY_STATUS_NO_KEY: the slot names no key event (no slot
 *   yet, or a slot without application["m.shared_key_event"])
 * @MRTC_OLM_SLOT_KEY_STATUS_WAITING: the slot names a key event whose key
 *   we do not have yet (its Megolm session is missing): key requests are
 *   being sent; the previous key, if any, stays in use
 * @MRTC_OLM_SLOT_KEY_STATUS_READY: the named key is in use
 * @MRTC_OLM_SLOT_KEY_STATUS_INVALID: the named event is not a usable key
 *   (not encrypted, not a key event, a malformed key, a malformed
 *   reference): nothing will make it usable; a moderator must rotate
 *
 * Where the slot-shared key stands. Whatever it is, media is never sent or
 * accepted unencrypted in this mode.
 */
typedef enum
{
  MRTC_OLM_SLOT_KEY_STATUS_NO_KEY,
  MRTC_OLM_SLOT_KEY_STATUS_WAITING,
  MRTC_OLM_SLOT_KEY_STATUS_READY,
  MRTC_OLM_SLOT_KEY_STATUS_INVALID,
} MrtcOlmSlotKeyStatus;

const gchar *mrtc_olm_slot_key_status_name (MrtcOlmSlotKeyStatus status);

/* Content of a key event: @key must be exactly 16 bytes in padded or
 * unpadded standard base64. */
gboolean mrtc_olm_slot_key_content_parse (
    JsonObject *content, guint8 key[MRTC_OLM_SLOT_KEY_LEN], GError **error);
JsonObject *mrtc_olm_slot_key_content_build (
    const guint8 key[MRTC_OLM_SLOT_KEY_LEN]);

gboolean mrtc_olm_slot_key_event_id_is_valid (const gchar *event_id);
/* The key event a slot content names: TRUE with *@event_id NULL when it
 * names none, FALSE when the reference is malformed. */
gboolean mrtc_olm_slot_key_reference_parse (
    JsonObject *slot_content, gchar **event_id, GError **error);
/* A copy of @slot_content naming @event_id, everything else kept. */
JsonObject *mrtc_olm_slot_key_reference_set (
    JsonObject *slot_content, const gchar *event_id, GError **error);

/* The key index (0..255) of a key event: the first byte of SHA-256 of its
 * event id, the same for every member without any further signalling. */
guint mrtc_olm_slot_key_index_for_event (const gchar *event_id);

/* Whether @user_id may send state events of @event_type, from the room
 * state (array of state events: m.room.create and m.room.power_levels are
 * read). */
gboolean mrtc_olm_slot_key_can_send_state (
    JsonArray *room_state, const gchar *user_id, const gchar *event_type);

/**
 * MrtcOlmSlotKeyChangeKind:
 * @MRTC_OLM_SLOT_KEY_CHANGE_KEY: a new current key (@index, @key,
 *   @event_id): encrypt with it from now on, decrypt with it too
 * @MRTC_OLM_SLOT_KEY_CHANGE_EXPIRED: the key at @index (of @event_id) left
 *   its grace period: forget it
 * @MRTC_OLM_SLOT_KEY_CHANGE_STATUS: the status changed (@status, @event_id,
 *   @message)
 */
typedef enum
{
  MRTC_OLM_SLOT_KEY_CHANGE_KEY,
  MRTC_OLM_SLOT_KEY_CHANGE_EXPIRED,
  MRTC_OLM_SLOT_KEY_CHANGE_STATUS,
} MrtcOlmSlotKeyChangeKind;

typedef struct
{
  MrtcOlmSlotKeyChangeKind kind;
  guint index;
  guint8 key[MRTC_OLM_SLOT_KEY_LEN];
  gchar *event_id;
  MrtcOlmSlotKeyStatus status;
  gchar *message;
} MrtcOlmSlotKeyChange;

void mrtc_olm_slot_key_change_free (MrtcOlmSlotKeyChange *change);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (
    MrtcOlmSlotKeyChange, mrtc_olm_slot_key_change_free)

/**
 * MrtcOlmSlotKeySchedule:
 *
 * Which slot-shared key is current, with no I/O: feed it the slot state
 * events and the keys of key events as they are decrypted, call
 * mrtc_olm_slot_key_schedule_update() and act on the changes popped.
 */
typedef struct _MrtcOlmSlotKeySchedule MrtcOlmSlotKeySchedule;

MrtcOlmSlotKeySchedule *mrtc_olm_slot_key_schedule_new (
    const gchar *slot_id, MrtcOlmClockFunc clock, gpointer clock_data);
void mrtc_olm_slot_key_schedule_free (MrtcOlmSlotKeySchedule *schedule);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (
    MrtcOlmSlotKeySchedule, mrtc_olm_slot_key_schedule_free)

void mrtc_olm_slot_key_schedule_set_grace (
    MrtcOlmSlotKeySchedule *schedule, gint64 grace_ms);
void mrtc_olm_slot_key_schedule_set_request_backoff (
    MrtcOlmSlotKeySchedule *schedule, gint64 initial_ms, gint64 max_ms);

gboolean mrtc_olm_slot_key_schedule_handle_slot_event (
    MrtcOlmSlotKeySchedule *schedule, JsonObject *event);
gboolean mrtc_olm_slot_key_schedule_add_key (MrtcOlmSlotKeySchedule *schedule,
    const gchar *event_id, const guint8 *key, gsize key_len, GError **error);
gboolean mrtc_olm_slot_key_schedule_has_key (
    MrtcOlmSlotKeySchedule *schedule, const gchar *event_id);
void mrtc_olm_slot_key_schedule_reject (MrtcOlmSlotKeySchedule *schedule,
    const gchar *event_id, const gchar *reason);

void mrtc_olm_slot_key_schedule_update (MrtcOlmSlotKeySchedule *schedule);
MrtcOlmSlotKeyChange *mrtc_olm_slot_key_schedule_pop_change (
    MrtcOlmSlotKeySchedule *schedule);
gint64 mrtc_olm_slot_key_schedule_next_deadline (
    MrtcOlmSlotKeySchedule *schedule);
gchar *mrtc_olm_slot_key_schedule_take_request (
    MrtcOlmSlotKeySchedule *schedule);
guint mrtc_olm_slot_key_schedule_get_requests (
    MrtcOlmSlotKeySchedule *schedule);

const gchar *mrtc_olm_slot_key_schedule_get_reference (
    MrtcOlmSlotKeySchedule *schedule);
const gchar *mrtc_olm_slot_key_schedule_get_slot_type (
    MrtcOlmSlotKeySchedule *schedule);
JsonObject *mrtc_olm_slot_key_schedule_get_slot_content (
    MrtcOlmSlotKeySchedule *schedule);
MrtcOlmSlotKeyStatus mrtc_olm_slot_key_schedule_get_status (
    MrtcOlmSlotKeySchedule *schedule);
const gchar *mrtc_olm_slot_key_schedule_get_current (
    MrtcOlmSlotKeySchedule *schedule, guint *index,
    guint8 key[MRTC_OLM_SLOT_KEY_LEN]);
gboolean mrtc_olm_slot_key_schedule_lookup (MrtcOlmSlotKeySchedule *schedule,
    guint index, guint8 key[MRTC_OLM_SLOT_KEY_LEN]);
gboolean mrtc_olm_slot_key_schedule_index_in_use (
    MrtcOlmSlotKeySchedule *schedule, guint index);

G_END_DECLS

#endif /* __MRTC_OLM_SLOT_KEY_SCHEDULE_H__ */
