/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/**
 * SECTION:gstmatrixrtcpad
 * @title: GstMatrixRtcPad
 * @short_description: a remote member's track on matrixrtcbin / matrixrtcsrc
 *
 * The source pads matrixrtcbin and matrixrtcsrc add for remote members
 * carry the member's Matrix identity (user-id, device-id, member-id) and the
 * track's kind and source, so that applications can route them in a
 * "pad-added" handler.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstmatrixrtcpad.h"

struct _GstMatrixRtcPad
{
  GstGhostPad parent;
  gchar *user_id;
  gchar *device_id;
  gchar *member_id;
  gchar *kind;
  gchar *source;
};

enum
{
  PROP_0,
  PROP_USER_ID,
  PROP_DEVICE_ID,
  PROP_MEMBER_ID,
  PROP_KIND,
  PROP_SOURCE,
};

G_DEFINE_TYPE (GstMatrixRtcPad, gst_matrix_rtc_pad, GST_TYPE_GHOST_PAD);

static void
gst_matrix_rtc_pad_get_property (
    GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  GstMatrixRtcPad *self = GST_MATRIX_RTC_PAD (object);

  switch (prop_id) {
    case PROP_USER_ID:
      g_value_set_string (value, self->user_id);
      break;
    case PROP_DEVICE_ID:
      g_value_set_string (value, self->device_id);
      break;
    case PROP_MEMBER_ID:
      g_value_set_string (value, self->member_id);
      break;
    case PROP_KIND:
      g_value_set_string (value, self->kind);
      break;
    case PROP_SOURCE:
      g_value_set_string (value, self->source);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_matrix_rtc_pad_finalize (GObject *object)
{
  GstMatrixRtcPad *self = GST_MATRIX_RTC_PAD (object);

  g_free (self->user_id);
  g_free (self->device_id);
  g_free (self->member_id);
  g_free (self->kind);
  g_free (self->source);
  G_OBJECT_CLASS (gst_matrix_rtc_pad_parent_class)->finalize (object);
}

static void
gst_matrix_rtc_pad_class_init (GstMatrixRtcPadClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  const GParamFlags ro = G_PARAM_READABLE | G_PARAM_STATIC_STRINGS;

  gobject_class->get_property = gst_matrix_rtc_pad_get_property;
  gobject_class->finalize = gst_matrix_rtc_pad_finalize;

  g_object_class_install_property (gobject_class, PROP_USER_ID,
      g_param_spec_string ("user-id", "User id",
          "Matrix user id of the member (@user:server)", NULL, ro));
  g_object_class_install_property (gobject_class, PROP_DEVICE_ID,
      g_param_spec_string ("device-id", "Device id",
          "Matrix device id of the member", NULL, ro));
  g_object_class_install_property (gobject_class, PROP_MEMBER_ID,
      g_param_spec_string ("member-id", "Member id",
          "MatrixRTC member id (pseudonymous id, or user:device in the legacy "
          "format)",
          NULL, ro));
  g_object_class_install_property (gobject_class, PROP_KIND,
      g_param_spec_string (
          "kind", "Kind", "Track kind: \"audio\" or \"video\"", NULL, ro));
  g_object_class_install_property (gobject_class, PROP_SOURCE,
      g_param_spec_string ("source", "Source",
          "Track source: \"camera\", \"microphone\", \"screen_share\", ...",
          NULL, ro));
}

static void
gst_matrix_rtc_pad_init (GstMatrixRtcPad *self)
{
}

GstPad *
gst_matrix_rtc_pad_new (const gchar *name, GstPadTemplate *templ,
    const gchar *user_id, const gchar *device_id, const gchar *member_id,
    const gchar *kind, const gchar *source)
{
  GstMatrixRtcPad *pad = g_object_new (GST_TYPE_MATRIX_RTC_PAD, "name", name,
      "direction", GST_PAD_SRC, "template", templ, NULL);

  pad->user_id = g_strdup (user_id);
  pad->device_id = g_strdup (device_id);
  pad->member_id = g_strdup (member_id);
  pad->kind = g_strdup (kind);
  pad->source = g_strdup (source);
  return GST_PAD (pad);
}
