/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* Internal to ext/olm: the account's fields, shared by the Olm and Megolm
 * halves of MrtcOlmAccount. */

#ifndef __MRTC_OLM_PRIVATE_H__
#define __MRTC_OLM_PRIVATE_H__

#include "mrtcolmaccount.h"

#include <olm/olm.h>
#include <olm/inbound_group_session.h>
#include <olm/outbound_group_session.h>

G_BEGIN_DECLS

struct _MrtcOlmAccount
{
  gchar *user_id;
  gchar *device_id;
  gchar *store_path;
  guint8 *pickle_key;
  gsize pickle_key_len;

  OlmAccount *olm;
  gchar *curve25519;
  gchar *ed25519;
  gboolean device_keys_published;
  gboolean dirty;

  /* "user SEP device" -> MrtcOlmDevice */
  GHashTable *devices;
  /* "user SEP device" -> MrtcOlmRemovedDevice: devices that left their
   * user's device list, whose identity keys stay pinned */
  GHashTable *removed_devices;
  /* peer curve25519 -> GPtrArray of MrtcOlmSessionEntry */
  GHashTable *sessions;
  /* peer curve25519 -> GPtrArray of gchar * (oldest first): ids of evicted
   * Olm sessions, which a replayed pre-key message would re-create */
  GHashTable *retired_sessions;
  /* Real time in µs when a fallback key was published while the previous
   * one is still kept by libolm (forgotten an hour later), or 0 */
  gint64 fallback_published_at;
  /* room id -> MrtcOlmOutboundGroup */
  GHashTable *outbound_groups;
  /* "room SEP sender curve25519 SEP session id" -> MrtcOlmInboundGroup */
  GHashTable *inbound_groups;

  gint64 megolm_period_ms;
  guint32 megolm_max_messages;
};

gchar *mrtc_olm_pickle_buffer_to_string (guint8 *buffer, gsize len);

void mrtc_olm_megolm_init (MrtcOlmAccount *account);
void mrtc_olm_megolm_save (MrtcOlmAccount *account, JsonBuilder *builder);
gboolean mrtc_olm_megolm_load (
    MrtcOlmAccount *account, JsonObject *store, GError **error);

G_END_DECLS

#endif /* __MRTC_OLM_PRIVATE_H__ */
