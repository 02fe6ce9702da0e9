/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#ifndef __MRTC_OLM_MEDIA_KEYS_H__
#define __MRTC_OLM_MEDIA_KEYS_H__

#include "mrtcolmaccount.h"

G_BEGIN_DECLS

/* The inner (Olm-encrypted) to-device event type, matrix-js-sdk 43. */
#define MRTC_OLM_MEDIA_KEY_EVENT_TYPE "io.element.call.encryption_keys"
/* Length of the keys we generate (matrix-js-sdk: 16 random bytes). */
#define MRTC_OLM_MEDIA_KEY_LEN 16
/* Longest key accepted from others. */
#define MRTC_OLM_MEDIA_KEY_MAX_LEN 32

/**
 * MrtcOlmClockFunc:
 * @user_data: the data given with the function
 *
 * Returns: a monotonic time in milliseconds.
 */
typedef gint64 (*MrtcOlmClockFunc) (gpointer user_data);

/**
 * MrtcOlmMember:
 * @user_id: the member's user
 * @device_id: the member's device
 * @member_id: the membership's member id (`member.id`), or %NULL
 * @identity: the member's LiveKit participant identity (rtcBackendIdentity)
 * @created_ts: when the membership was created (a re-sent membership with a
 *   new timestamp counts as a re-join, as in matrix-js-sdk)
 *
 * One current call member, as the session layer computes it.
 */
typedef struct
{
  gchar *user_id;
  gchar *device_id;
  gchar *member_id;
  gchar *identity;
  gint64 created_ts;
} MrtcOlmMember;

MrtcOlmMember *mrtc_olm_member_new (const gchar *user_id,
    const gchar *device_id, const gchar *member_id, const gchar *identity,
    gint64 created_ts);
MrtcOlmMember *mrtc_olm_member_copy (const MrtcOlmMember *member);
void mrtc_olm_member_free (MrtcOlmMember *member);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MrtcOlmMember, mrtc_olm_member_free)

gchar *mrtc_olm_rtc_backend_identity (
    const gchar *user_id, const gchar *device_id, const gchar *member_id);

/**
 * MrtcOlmMediaKeyContent:
 * @index: the key index (0..255)
 * @key: the key bytes
 * @key_len: their number
 * @room_id: the room of the call
 * @claimed_device_id: `member.claimed_device_id`
 * @member_id: (nullable): `member.id`
 * @sent_ts: `sent_ts` (0 when absent)
 *
 * A parsed `io.element.call.encryption_keys` content.
 */
typedef struct
{
  guint index;
  guint8 key[MRTC_OLM_MEDIA_KEY_MAX_LEN];
  gsize key_len;
  gchar *room_id;
  gchar *claimed_device_id;
  gchar *member_id;
  gint64 sent_ts;
} MrtcOlmMediaKeyContent;

JsonObject *mrtc_olm_media_key_content_build (const gchar *room_id, guint index,
    const guint8 *key, gsize key_len, const gchar *device_id,
    const gchar *member_id, gint64 sent_ts);
MrtcOlmMediaKeyContent *mrtc_olm_media_key_content_parse (
    JsonObject *content, GError **error);
void mrtc_olm_media_key_content_free (MrtcOlmMediaKeyContent *content);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (
    MrtcOlmMediaKeyContent, mrtc_olm_media_key_content_free)

/* Sending side: our own key and its rotation */

typedef enum
{
  MRTC_OLM_MEDIA_KEY_ACTION_SEND,
  MRTC_OLM_MEDIA_KEY_ACTION_USE,
} MrtcOlmMediaKeyActionKind;

/**
 * MrtcOlmMediaKeyAction:
 * @kind: %MRTC_OLM_MEDIA_KEY_ACTION_SEND: Olm-encrypt the key to every
 *   member in @targets (they count as having it from then on: report the
 *   targets it did not reach with
 *   mrtc_olm_media_key_manager_key_send_failed() so that it is sent to them
 *   again); %MRTC_OLM_MEDIA_KEY_ACTION_USE: give the key to the frame
 *   encryptor as our current key
 * @index: the key index
 * @key: the key (%MRTC_OLM_MEDIA_KEY_LEN bytes)
 * @targets: (element-type MrtcOlmMember): for SEND, the recipients
 */
typedef struct
{
  MrtcOlmMediaKeyActionKind kind;
  guint index;
  guint8 key[MRTC_OLM_MEDIA_KEY_LEN];
  GPtrArray *targets;
} MrtcOlmMediaKeyAction;

void mrtc_olm_media_key_action_free (MrtcOlmMediaKeyAction *action);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (
    MrtcOlmMediaKeyAction, mrtc_olm_media_key_action_free)

typedef struct _MrtcOlmMediaKeyManager MrtcOlmMediaKeyManager;

MrtcOlmMediaKeyManager *mrtc_olm_media_key_manager_new (
    const gchar *own_user_id, const gchar *own_device_id,
    MrtcOlmClockFunc clock, gpointer clock_data);
void mrtc_olm_media_key_manager_free (MrtcOlmMediaKeyManager *manager);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (
    MrtcOlmMediaKeyManager, mrtc_olm_media_key_manager_free)
void mrtc_olm_media_key_manager_set_use_key_delay (
    MrtcOlmMediaKeyManager *manager, gint64 delay_ms);
void mrtc_olm_media_key_manager_set_grace_period (
    MrtcOlmMediaKeyManager *manager, gint64 grace_ms);
void mrtc_olm_media_key_manager_set_rotation_participant_limit (
    MrtcOlmMediaKeyManager *manager, guint limit);
void mrtc_olm_media_key_manager_update_members (
    MrtcOlmMediaKeyManager *manager, GPtrArray *members);
void mrtc_olm_media_key_manager_key_sent (
    MrtcOlmMediaKeyManager *manager, guint index);
void mrtc_olm_media_key_manager_key_send_failed (
    MrtcOlmMediaKeyManager *manager, guint index, GPtrArray *failed);
void mrtc_olm_media_key_manager_tick (MrtcOlmMediaKeyManager *manager);
gint64 mrtc_olm_media_key_manager_next_deadline (
    MrtcOlmMediaKeyManager *manager);
MrtcOlmMediaKeyAction *mrtc_olm_media_key_manager_pop_action (
    MrtcOlmMediaKeyManager *manager);

/* Receiving side: binding keys to members */

/**
 * MrtcOlmMediaKeyDelivery:
 * @identity: the member's LiveKit participant identity
 * @index: the key index
 * @key: the key bytes
 * @key_len: their number
 * @user_id: the member's user
 * @device_id: the member's device
 *
 * A key to hand to the frame decryptor for @identity at @index.
 */
typedef struct
{
  gchar *identity;
  guint index;
  guint8 key[MRTC_OLM_MEDIA_KEY_MAX_LEN];
  gsize key_len;
  gchar *user_id;
  gchar *device_id;
} MrtcOlmMediaKeyDelivery;

void mrtc_olm_media_key_delivery_free (MrtcOlmMediaKeyDelivery *delivery);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (
    MrtcOlmMediaKeyDelivery, mrtc_olm_media_key_delivery_free)

typedef struct _MrtcOlmMediaKeyReceiver MrtcOlmMediaKeyReceiver;

MrtcOlmMediaKeyReceiver *mrtc_olm_media_key_receiver_new (
    const gchar *room_id, MrtcOlmClockFunc clock, gpointer clock_data);
void mrtc_olm_media_key_receiver_free (MrtcOlmMediaKeyReceiver *receiver);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (
    MrtcOlmMediaKeyReceiver, mrtc_olm_media_key_receiver_free)
void mrtc_olm_media_key_receiver_set_hold_time (
    MrtcOlmMediaKeyReceiver *receiver, gint64 hold_ms);
void mrtc_olm_media_key_receiver_update_members (
    MrtcOlmMediaKeyReceiver *receiver, GPtrArray *members);
gboolean mrtc_olm_media_key_receiver_receive (MrtcOlmMediaKeyReceiver *receiver,
    const MrtcOlmDecrypted *event, GError **error);
void mrtc_olm_media_key_receiver_reject_unencrypted (
    MrtcOlmMediaKeyReceiver *receiver, const gchar *sender);
void mrtc_olm_media_key_receiver_tick (MrtcOlmMediaKeyReceiver *receiver);
MrtcOlmMediaKeyDelivery *mrtc_olm_media_key_receiver_pop_delivery (
    MrtcOlmMediaKeyReceiver *receiver);
guint mrtc_olm_media_key_receiver_get_dropped (
    MrtcOlmMediaKeyReceiver *receiver);
guint mrtc_olm_media_key_receiver_get_held (MrtcOlmMediaKeyReceiver *receiver);

G_END_DECLS

#endif /* __MRTC_OLM_MEDIA_KEYS_H__ */
