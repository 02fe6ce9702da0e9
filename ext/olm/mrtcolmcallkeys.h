/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#ifndef __MRTC_OLM_CALL_KEYS_H__
#define __MRTC_OLM_CALL_KEYS_H__

#include "mrtcolmmachine.h"

G_BEGIN_DECLS

/**
 * MrtcOlmCallKeys:
 *
 * The MatrixRTC per-member media keys of one call, over an
 * #MrtcOlmMachine: our key (`io.element.call.encryption_keys`, matrix-js-sdk
 * 43's shape) goes Olm-encrypted to every other member's device and is
 * rotated as members leave and join (#MrtcOlmMediaKeyManager); received keys
 * are bound to members by the Olm-verified sender device
 * (#MrtcOlmMediaKeyReceiver) and delivered by (LiveKit identity, index).
 *
 * Signals are emitted on the machine's worker thread.
 */
#define MRTC_OLM_TYPE_CALL_KEYS (mrtc_olm_call_keys_get_type ())
G_DECLARE_FINAL_TYPE (
    MrtcOlmCallKeys, mrtc_olm_call_keys, MRTC_OLM, CALL_KEYS, GObject);

MrtcOlmCallKeys *mrtc_olm_call_keys_new (
    MrtcOlmMachine *machine, const gchar *room_id, const gchar *own_member_id);
void mrtc_olm_call_keys_set_use_key_delay (
    MrtcOlmCallKeys *keys, gint64 delay_ms);
void mrtc_olm_call_keys_set_hold_time (MrtcOlmCallKeys *keys, gint64 hold_ms);
void mrtc_olm_call_keys_update_members (
    MrtcOlmCallKeys *keys, GPtrArray *members);
GBytes *mrtc_olm_call_keys_lookup (
    MrtcOlmCallKeys *keys, const gchar *identity, guint index);
GBytes *mrtc_olm_call_keys_get_own_key (MrtcOlmCallKeys *keys, guint *index);
guint mrtc_olm_call_keys_get_dropped (MrtcOlmCallKeys *keys);
void mrtc_olm_call_keys_stop (MrtcOlmCallKeys *keys);

G_END_DECLS

#endif /* __MRTC_OLM_CALL_KEYS_H__ */
