/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* Dumps what the registry knows of a plugin (elements, pad templates,
 * properties, signals) as JSON in the shape of GStreamer's
 * gst_plugins_cache.json. Debian's GStreamer does not ship the upstream
 * scanner (gst-hotdoc-plugins-scanner), hence this small one.
 *
 * Usage: gst-matrixrtc-doc-dump PLUGIN-NAME > cache.json */

#include <gst/gst.h>
#include <json-glib/json-glib.h>

static gchar *
value_to_string (const GValue *value)
{
  if (G_VALUE_HOLDS_STRING (value))
    return g_value_dup_string (value);
  if (G_VALUE_HOLDS_BOOLEAN (value))
    return g_strdup (g_value_get_boolean (value) ? "true" : "false");
  if (G_VALUE_HOLDS_BOXED (value))
    return g_value_get_boxed (value) ? gst_value_serialize (value) : NULL;
  if (G_VALUE_HOLDS_OBJECT (value))
    return NULL;
  return gst_value_serialize (value);
}

/* The element's type, or one of this package's base classes. */
static gboolean
is_own_type (GType t, GType element_type)
{
  return t == element_type
         || g_str_has_prefix (g_type_name (t), "GstMatrixRtc");
}

static gint
compare_feature_names (gconstpointer a, gconstpointer b)
{
  return g_strcmp0 (GST_OBJECT_NAME (a), GST_OBJECT_NAME (b));
}

static void
add_range (JsonBuilder *b, GParamSpec *pspec)
{
  gchar *min = NULL, *max = NULL;

#define RANGE(T, fmt, cast)                                                    \
  if (G_IS_PARAM_SPEC_##T (pspec)) {                                           \
    min = g_strdup_printf (fmt, (cast)G_PARAM_SPEC_##T (pspec)->minimum);      \
    max = g_strdup_printf (fmt, (cast)G_PARAM_SPEC_##T (pspec)->maximum);      \
  }
  RANGE (INT, "%d", gint);
  RANGE (UINT, "%u", guint);
  RANGE (INT64, "%" G_GINT64_FORMAT, gint64);
  RANGE (UINT64, "%" G_GUINT64_FORMAT, guint64);
  RANGE (LONG, "%ld", glong);
  RANGE (ULONG, "%lu", gulong);
  RANGE (DOUBLE, "%g", gdouble);
  RANGE (FLOAT, "%g", gdouble);
#undef RANGE
  if (min != NULL) {
    json_builder_set_member_name (b, "min");
    json_builder_add_string_value (b, min);
    json_builder_set_member_name (b, "max");
    json_builder_add_string_value (b, max);
  }
  g_free (min);
  g_free (max);
}

static void
add_properties (JsonBuilder *b, GObjectClass *klass, GType owner)
{
  GParamSpec **specs;
  guint n, i;

  specs = g_object_class_list_properties (klass, &n);
  json_builder_set_member_name (b, "properties");
  json_builder_begin_object (b);
  for (i = 0; i < n; i++) {
    GParamSpec *pspec = specs[i];
    const GValue *def;
    gchar *def_str;

    if (!is_own_type (pspec->owner_type, owner))
      continue;
    json_builder_set_member_name (b, pspec->name);
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "blurb");
    json_builder_add_string_value (b, g_param_spec_get_blurb (pspec));
    json_builder_set_member_name (b, "type");
    json_builder_add_string_value (b, g_type_name (pspec->value_type));
    json_builder_set_member_name (b, "readable");
    json_builder_add_boolean_value (b, (pspec->flags & G_PARAM_READABLE) != 0);
    json_builder_set_member_name (b, "writable");
    json_builder_add_boolean_value (b, (pspec->flags & G_PARAM_WRITABLE) != 0);
    json_builder_set_member_name (b, "construct-only");
    json_builder_add_boolean_value (
        b, (pspec->flags & G_PARAM_CONSTRUCT_ONLY) != 0);
    json_builder_set_member_name (b, "controllable");
    json_builder_add_boolean_value (
        b, (pspec->flags & GST_PARAM_CONTROLLABLE) != 0);
    json_builder_set_member_name (b, "mutable");
    json_builder_add_string_value (
        b, (pspec->flags & GST_PARAM_MUTABLE_PLAYING)  ? "playing"
           : (pspec->flags & GST_PARAM_MUTABLE_PAUSED) ? "paused"
           : (pspec->flags & GST_PARAM_MUTABLE_READY)  ? "ready"
                                                       : "null");
    def = g_param_spec_get_default_value (pspec);
    def_str = value_to_string (def);
    json_builder_set_member_name (b, "default");
    if (def_str != NULL)
      json_builder_add_string_value (b, def_str);
    else
      json_builder_add_null_value (b);
    g_free (def_str);
    if (G_IS_PARAM_SPEC_ENUM (pspec)) {
      GEnumClass *ec = G_PARAM_SPEC_ENUM (pspec)->enum_class;
      guint v;

      json_builder_set_member_name (b, "values");
      json_builder_begin_array (b);
      for (v = 0; v < ec->n_values; v++)
        json_builder_add_string_value (b, ec->values[v].value_nick);
      json_builder_end_array (b);
    }
    add_range (b, pspec);
    json_builder_end_object (b);
  }
  json_builder_end_object (b);
  g_free (specs);
}

static void
add_signals (JsonBuilder *b, GType type)
{
  guint *ids, n, i;
  GType t;

  json_builder_set_member_name (b, "signals");
  json_builder_begin_object (b);
  for (t = type; t != 0 && is_own_type (t, type); t = g_type_parent (t)) {
    ids = g_signal_list_ids (t, &n);
    for (i = 0; i < n; i++) {
      GSignalQuery q;
      guint a;

      g_signal_query (ids[i], &q);
      json_builder_set_member_name (b, q.signal_name);
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "args");
      json_builder_begin_array (b);
      for (a = 0; a < q.n_params; a++) {
        gchar *name = g_strdup_printf ("arg%u", a);

        json_builder_begin_object (b);
        json_builder_set_member_name (b, "name");
        json_builder_add_string_value (b, name);
        json_builder_set_member_name (b, "type");
        json_builder_add_string_value (
            b, g_type_name (q.param_types[a] & ~G_SIGNAL_TYPE_STATIC_SCOPE));
        json_builder_end_object (b);
        g_free (name);
      }
      json_builder_end_array (b);
      json_builder_set_member_name (b, "return-type");
      json_builder_add_string_value (b, g_type_name (q.return_type));
      json_builder_set_member_name (b, "action");
      json_builder_add_boolean_value (
          b, (q.signal_flags & G_SIGNAL_ACTION) != 0);
      json_builder_set_member_name (b, "when");
      json_builder_add_string_value (
          b, (q.signal_flags & G_SIGNAL_RUN_FIRST)  ? "first"
             : (q.signal_flags & G_SIGNAL_RUN_LAST) ? "last"
                                                    : "cleanup");
      json_builder_end_object (b);
    }
    g_free (ids);
  }
  json_builder_end_object (b);
}

/* Pad templates; a template whose pads are of a subclass of #GstPad names
 * it in "type", and the type goes to @pad_types for "other-types", as in
 * GStreamer's own cache. */
static void
add_pad_templates (JsonBuilder *b, GstElementFactory *factory,
    GstElementClass *element_class, GHashTable *pad_types)
{
  const GList *l;

  json_builder_set_member_name (b, "pad-templates");
  json_builder_begin_object (b);
  for (l = gst_element_factory_get_static_pad_templates (factory); l;
       l = l->next) {
    GstStaticPadTemplate *t = l->data;
    GstPadTemplate *templ;
    GstCaps *caps = gst_static_caps_get (&t->static_caps);
    gchar *caps_str = gst_caps_to_string (caps);

    json_builder_set_member_name (b, t->name_template);
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "caps");
    json_builder_add_string_value (b, caps_str);
    json_builder_set_member_name (b, "direction");
    json_builder_add_string_value (b, t->direction == GST_PAD_SRC ? "src"
                                      : t->direction == GST_PAD_SINK
                                          ? "sink"
                                          : "unknown");
    json_builder_set_member_name (b, "presence");
    json_builder_add_string_value (b, t->presence == GST_PAD_ALWAYS ? "always"
                                      : t->presence == GST_PAD_SOMETIMES
                                          ? "sometimes"
                                          : "request");
    templ
        = gst_element_class_get_pad_template (element_class, t->name_template);
    if (templ != NULL && GST_PAD_TEMPLATE_GTYPE (templ) != G_TYPE_NONE
        && GST_PAD_TEMPLATE_GTYPE (templ) != GST_TYPE_PAD) {
      GType pad_type = GST_PAD_TEMPLATE_GTYPE (templ);

      json_builder_set_member_name (b, "type");
      json_builder_add_string_value (b, g_type_name (pad_type));
      g_hash_table_add (pad_types, GSIZE_TO_POINTER (pad_type));
    }
    json_builder_end_object (b);
    g_free (caps_str);
    gst_caps_unref (caps);
  }
  json_builder_end_object (b);
}

static void
add_element (JsonBuilder *b, GstElementFactory *factory, GHashTable *pad_types)
{
  GstPluginFeature *loaded
      = gst_plugin_feature_load (GST_PLUGIN_FEATURE (factory));
  GstElementFactory *f = GST_ELEMENT_FACTORY (loaded);
  GType type = gst_element_factory_get_element_type (f);
  GObjectClass *klass = g_type_class_ref (type);
  GType *ifaces;
  guint n_ifaces, i;
  GType t;

  json_builder_set_member_name (b, GST_OBJECT_NAME (f));
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "author");
  json_builder_add_string_value (
      b, gst_element_factory_get_metadata (f, GST_ELEMENT_METADATA_AUTHOR));
  json_builder_set_member_name (b, "description");
  json_builder_add_string_value (b,
      gst_element_factory_get_metadata (f, GST_ELEMENT_METADATA_DESCRIPTION));
  json_builder_set_member_name (b, "klass");
  json_builder_add_string_value (
      b, gst_element_factory_get_metadata (f, GST_ELEMENT_METADATA_KLASS));
  json_builder_set_member_name (b, "long-name");
  json_builder_add_string_value (
      b, gst_element_factory_get_metadata (f, GST_ELEMENT_METADATA_LONGNAME));
  json_builder_set_member_name (b, "hierarchy");
  json_builder_begin_array (b);
  for (t = type; t != 0; t = g_type_parent (t))
    json_builder_add_string_value (b, g_type_name (t));
  json_builder_end_array (b);
  json_builder_set_member_name (b, "interfaces");
  json_builder_begin_array (b);
  ifaces = g_type_interfaces (type, &n_ifaces);
  for (i = 0; i < n_ifaces; i++)
    json_builder_add_string_value (b, g_type_name (ifaces[i]));
  g_free (ifaces);
  json_builder_end_array (b);
  add_pad_templates (b, f, GST_ELEMENT_CLASS (klass), pad_types);
  /* Properties and signals of the element's own classes and of this
   * package's base classes; those of GStreamer's are documented upstream. */
  add_properties (b, klass, type);
  add_signals (b, type);
  json_builder_set_member_name (b, "rank");
  json_builder_add_int_value (
      b, gst_plugin_feature_get_rank (GST_PLUGIN_FEATURE (f)));
  json_builder_end_object (b);
  g_type_class_unref (klass);
  gst_object_unref (loaded);
}

static gint
compare_type_names (gconstpointer a, gconstpointer b)
{
  return g_strcmp0 (
      g_type_name (GPOINTER_TO_SIZE (a)), g_type_name (GPOINTER_TO_SIZE (b)));
}

/* "other-types": the pad classes the elements' templates name, with their
 * hierarchy and own properties. */
static void
add_other_types (JsonBuilder *b, GHashTable *pad_types)
{
  GList *types
      = g_list_sort (g_hash_table_get_keys (pad_types), compare_type_names);
  GList *l;

  json_builder_set_member_name (b, "other-types");
  json_builder_begin_object (b);
  for (l = types; l; l = l->next) {
    GType type = GPOINTER_TO_SIZE (l->data);
    GObjectClass *klass = g_type_class_ref (type);
    GType t;

    json_builder_set_member_name (b, g_type_name (type));
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "hierarchy");
    json_builder_begin_array (b);
    for (t = type; t != 0; t = g_type_parent (t))
      json_builder_add_string_value (b, g_type_name (t));
    json_builder_end_array (b);
    json_builder_set_member_name (b, "kind");
    json_builder_add_string_value (b, "object");
    add_properties (b, klass, type);
    json_builder_end_object (b);
    g_type_class_unref (klass);
  }
  json_builder_end_object (b);
  g_list_free (types);
}

int
main (int argc, char **argv)
{
  JsonBuilder *b;
  JsonGenerator *gen;
  JsonNode *root;
  GstPlugin *plugin;
  GList *features, *l;
  GHashTable *pad_types = g_hash_table_new (NULL, NULL);
  gchar *out;

  gst_init (&argc, &argv);
  if (argc != 2) {
    g_printerr ("usage: %s PLUGIN-NAME\n", argv[0]);
    return 2;
  }
  plugin = gst_registry_find_plugin (gst_registry_get (), argv[1]);
  if (plugin == NULL) {
    g_printerr ("plugin %s not found (GST_PLUGIN_PATH?)\n", argv[1]);
    return 1;
  }

  b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, argv[1]);
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "description");
  json_builder_add_string_value (b, gst_plugin_get_description (plugin));
  json_builder_set_member_name (b, "license");
  json_builder_add_string_value (b, gst_plugin_get_license (plugin));
  json_builder_set_member_name (b, "package");
  json_builder_add_string_value (b, gst_plugin_get_package (plugin));
  json_builder_set_member_name (b, "source");
  json_builder_add_string_value (b, gst_plugin_get_source (plugin));
  json_builder_set_member_name (b, "url");
  json_builder_add_string_value (b, gst_plugin_get_origin (plugin));
  json_builder_set_member_name (b, "elements");
  json_builder_begin_object (b);
  features
      = gst_registry_get_feature_list_by_plugin (gst_registry_get (), argv[1]);
  features = g_list_sort (features, compare_feature_names);
  for (l = features; l; l = l->next) {
    if (GST_IS_ELEMENT_FACTORY (l->data))
      add_element (b, GST_ELEMENT_FACTORY (l->data), pad_types);
  }
  gst_plugin_feature_list_free (features);
  json_builder_end_object (b);
  add_other_types (b, pad_types);
  g_hash_table_unref (pad_types);
  json_builder_end_object (b);
  json_builder_end_object (b);

  root = json_builder_get_root (b);
  gen = json_generator_new ();
  json_generator_set_pretty (gen, TRUE);
  json_generator_set_indent (gen, 4);
  json_generator_set_root (gen, root);
  out = json_generator_to_data (gen, NULL);
  g_print ("%s\n", out);
  g_free (out);
  json_node_unref (root);
  g_object_unref (gen);
  g_object_unref (b);
  gst_object_unref (plugin);
  return 0;
}
