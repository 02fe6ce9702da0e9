/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "olmtestutil.h"

const guint8 olm_test_pickle_key[32] = "0123456789abcdef0123456789abcdef";

/* An in-memory account (no store). */
MrtcOlmAccount *
olm_test_account_new (const gchar *user_id, const gchar *device_id)
{
  GError *error = NULL;
  MrtcOlmAccount *account = mrtc_olm_account_open (user_id, device_id, NULL,
      olm_test_pickle_key, sizeof (olm_test_pickle_key), &error);

  g_assert_no_error (error);
  g_assert_nonnull (account);
  return account;
}

/* What /keys/query would return: the JSON goes through text, as on the
 * wire. */
JsonObject *
olm_test_roundtrip_json (JsonObject *object)
{
  g_autofree gchar *text = mrtc_olm_json_object_to_string (object);
  GError *error = NULL;
  JsonObject *copy = mrtc_olm_json_object_from_string (text, -1, &error);

  g_assert_no_error (error);
  return copy;
}

const MrtcOlmDevice *
olm_test_learn_device (MrtcOlmAccount *learner, MrtcOlmAccount *other)
{
  g_autoptr (JsonObject) keys = mrtc_olm_account_device_keys (other);
  g_autoptr (JsonObject) wire = olm_test_roundtrip_json (keys);
  GError *error = NULL;
  const MrtcOlmDevice *device = mrtc_olm_account_add_device (learner, wire,
      mrtc_olm_account_get_user_id (other),
      mrtc_olm_account_get_device_id (other), &error);

  g_assert_no_error (error);
  g_assert_nonnull (device);
  return device;
}

/* Uploads one fresh one-time key of @owner and claims it, as
 * /keys/upload + /keys/claim would: returns the claimed object for the
 * device. */
JsonObject *
olm_test_claim_one_time_key (MrtcOlmAccount *owner)
{
  g_autoptr (JsonObject) otks = NULL;
  JsonObject *claimed = json_object_new ();
  GList *members;

  mrtc_olm_account_generate_one_time_keys (owner, 1);
  otks = mrtc_olm_account_one_time_keys (owner);
  members = json_object_get_members (otks);
  g_assert_nonnull (members);
  json_object_set_object_member (claimed, members->data,
      olm_test_roundtrip_json (
          json_object_get_object_member (otks, members->data)));
  g_list_free (members);
  mrtc_olm_account_mark_published (owner);
  return claimed;
}

/* @from knows @to's device and has an outbound Olm session with it. */
void
olm_test_establish (MrtcOlmAccount *from, MrtcOlmAccount *to)
{
  const MrtcOlmDevice *device = olm_test_learn_device (from, to);
  g_autoptr (JsonObject) claimed = olm_test_claim_one_time_key (to);
  GError *error = NULL;

  g_assert_true (
      mrtc_olm_account_create_outbound_session (from, device, claimed, &error));
  g_assert_no_error (error);
}
