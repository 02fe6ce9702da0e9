/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#ifndef __MRTC_OLM_MACHINE_H__
#define __MRTC_OLM_MACHINE_H__

#include <gio/gio.h>

#include "mrtcclient.h"
#include "mrtcolmaccount.h"
#include "mrtcolmmediakeys.h"

G_BEGIN_DECLS

/**
 * MrtcOlmMachine:
 *
 * The device crypto driver of one logged-in #MrtcClient: it opens (or
 * creates) the #MrtcOlmAccount store, uploads device and one-time keys and
 * keeps them replenished, tracks the device lists of the users it shares
 * tracked rooms with, claims one-time keys and creates Olm sessions,
 * encrypts to-device messages to many devices in one /sendToDevice call,
 * decrypts the `m.room.encrypted` to-device events the client's sync
 * receives and Megolm-encrypts and decrypts room events.
 *
 * Order: log the client in, create the machine (it uploads the keys), then
 * start the client's sync loop (the machine follows it from then on), then
 * mrtc_olm_machine_track_room() for the call's room. Decrypted room events
 * (Megolm-encrypted sticky memberships included) come out of
 * #MrtcOlmMachine::room-event; #MrtcOlmCallKeys does the media keys.
 *
 * Threading: all crypto state lives on the machine's own worker thread
 * (its own #GMainContext). The client's signals only queue work there, in
 * order. The blocking functions below may be called from any thread but the
 * client's (they run on the worker and wait); the machine's signals are
 * emitted on the worker thread, where handlers may call the blocking
 * functions directly. Drop the last reference from an application thread,
 * after those of the #MrtcOlmCallKeys made with it.
 */
#define MRTC_OLM_TYPE_MACHINE (mrtc_olm_machine_get_type ())
G_DECLARE_FINAL_TYPE (
    MrtcOlmMachine, mrtc_olm_machine, MRTC_OLM, MACHINE, GObject);

MrtcOlmMachine *mrtc_olm_machine_new (MrtcClient *client,
    const gchar *store_path, const guint8 *pickle_key, gsize pickle_key_len,
    GError **error);

MrtcClient *mrtc_olm_machine_get_client (MrtcOlmMachine *machine);
GMainContext *mrtc_olm_machine_get_context (MrtcOlmMachine *machine);
const gchar *mrtc_olm_machine_get_user_id (MrtcOlmMachine *machine);
const gchar *mrtc_olm_machine_get_device_id (MrtcOlmMachine *machine);
gchar *mrtc_olm_machine_dup_curve25519 (MrtcOlmMachine *machine);
gchar *mrtc_olm_machine_dup_ed25519 (MrtcOlmMachine *machine);

/* Runs @func on the worker thread and waits (directly when called there). */
void mrtc_olm_machine_run_sync (
    MrtcOlmMachine *machine, GSourceFunc func, gpointer data);
/* Queues @func on the worker thread, after everything queued before. */
void mrtc_olm_machine_run_async (MrtcOlmMachine *machine, GSourceFunc func,
    gpointer data, GDestroyNotify notify);
/* Waits until everything queued so far (sync responses, to-device events)
 * has been processed. */
void mrtc_olm_machine_flush (MrtcOlmMachine *machine);

gboolean mrtc_olm_machine_upload_keys (MrtcOlmMachine *machine, GError **error);
gboolean mrtc_olm_machine_track_users (
    MrtcOlmMachine *machine, const gchar *const *user_ids, GError **error);
gboolean mrtc_olm_machine_track_room (
    MrtcOlmMachine *machine, const gchar *room_id, GError **error);
GPtrArray *mrtc_olm_machine_list_devices (
    MrtcOlmMachine *machine, const gchar *user_id);

gint mrtc_olm_machine_send_to_members (MrtcOlmMachine *machine,
    GPtrArray *recipients, const gchar *type, JsonObject *content,
    GPtrArray *unreached, GError **error);

JsonObject *mrtc_olm_machine_encrypt_room_event (MrtcOlmMachine *machine,
    const gchar *room_id, const gchar *type, JsonObject *content,
    GError **error);
void mrtc_olm_machine_encrypt_room_event_async (MrtcOlmMachine *machine,
    const gchar *room_id, const gchar *type, JsonObject *content,
    GCancellable *cancellable, GAsyncReadyCallback callback,
    gpointer user_data);
JsonObject *mrtc_olm_machine_encrypt_room_event_finish (
    MrtcOlmMachine *machine, GAsyncResult *result, GError **error);
gchar *mrtc_olm_machine_send_room_event (MrtcOlmMachine *machine,
    const gchar *room_id, const gchar *type, JsonObject *content,
    GError **error);

/* Decrypts a room event fetched outside /sync (GET .../event/{id}) as if
 * the timeline brought it: out of room-event now or once its room key
 * comes. Any thread. */
void mrtc_olm_machine_feed_room_event (
    MrtcOlmMachine *machine, const gchar *room_id, JsonObject *event);

GPtrArray *mrtc_olm_machine_recent_decrypted (
    MrtcOlmMachine *machine, const gchar *type);

guint mrtc_olm_machine_get_dropped (MrtcOlmMachine *machine);
guint mrtc_olm_machine_get_pending_room_events (MrtcOlmMachine *machine);

G_END_DECLS

#endif /* __MRTC_OLM_MACHINE_H__ */
