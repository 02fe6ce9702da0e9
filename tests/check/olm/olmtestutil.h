/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* Helpers shared by the ext/olm unit tests: in-process accounts that
 * exchange keys the way the Matrix client will drive them. */

#ifndef __OLM_TEST_UTIL_H__
#define __OLM_TEST_UTIL_H__

#include "mrtcolmaccount.h"
#include "mrtcolmmediakeys.h"

G_BEGIN_DECLS

extern const guint8 olm_test_pickle_key[32];

MrtcOlmAccount *olm_test_account_new (
    const gchar *user_id, const gchar *device_id);
const MrtcOlmDevice *olm_test_learn_device (
    MrtcOlmAccount *learner, MrtcOlmAccount *other);
JsonObject *olm_test_claim_one_time_key (MrtcOlmAccount *owner);
void olm_test_establish (MrtcOlmAccount *from, MrtcOlmAccount *to);
JsonObject *olm_test_roundtrip_json (JsonObject *object);

G_END_DECLS

#endif /* __OLM_TEST_UTIL_H__ */
