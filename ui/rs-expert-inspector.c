/* rs-expert-inspector.c: one expert in detail, and the interventions.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "rs-expert-inspector.h"

#include <glib/gi18n.h>
#include <math.h>

#include "rs-plot-widget.h"
#include "rs-routing-stats.h"

struct _RsExpertInspector {
  GtkWidget     parent_instance;
  GtkLabel     *title_label;
  GtkLabel     *hint_label;
  GtkWidget    *details_box;
  GtkLabel     *load_label;
  GtkLabel     *prob_label;
  GtkLabel     *weight_label;
  GtkLabel     *act_label;
  GtkLabel     *tokens_label;
  RsPlotWidget *weights_plot;
  GtkButton    *disable_button;
  GtkButton    *force_button;
  GtkScale     *bias_scale;
  GtkButton    *bias_button;
  GtkListBox   *ivs_list;

  const RsModelInfo *info;
  const RsTrace *trace;
  int           layer, expert;
  guint         update_idle;
  GArray       *shown;  /* RsIntervention the list shows */
};

G_DEFINE_FINAL_TYPE (RsExpertInspector, rs_expert_inspector, GTK_TYPE_WIDGET)

GtkWidget *
rs_expert_inspector_new (void)
{
  return g_object_new (RS_TYPE_EXPERT_INSPECTOR, NULL);
}

gboolean
rs_expert_inspector_get_expert (RsExpertInspector *self, int *layer, int *expert)
{
  *layer = self->layer;
  *expert = self->expert;
  return self->layer >= 0;
}

static char *
token_label (const RsTrace *tr, gint64 t)
{
  const char *text = g_ptr_array_index (tr->token_text, t);
  GString *s = g_string_new (NULL);
  for (const char *p = text ? text : ""; *p; p++)
    {
      if (*p == '\n')
        g_string_append (s, "↵");
      else if (*p == ' ')
        g_string_append (s, "·");
      else
        g_string_append_c (s, *p);
    }
  return g_string_free (s, FALSE);
}

static void
update_details (RsExpertInspector *self)
{
  gboolean have = self->info != NULL && self->layer >= 0 && self->layer < self->info->n_layer;
  gtk_widget_set_visible (self->details_box, have);
  gtk_widget_set_visible (GTK_WIDGET (self->hint_label), !have);
  if (!have)
    {
      gtk_label_set_text (self->title_label, _("Expert Inspector"));
      return;
    }
  g_autofree char *title = g_strdup_printf (_("Layer %d · Expert %d"), self->layer, self->expert);
  gtk_label_set_text (self->title_label, title);
  if (self->trace == NULL || self->trace->n_tokens == 0)
    {
      gtk_label_set_text (self->load_label, _("no tokens yet"));
      gtk_label_set_text (self->prob_label, "–");
      gtk_label_set_text (self->weight_label, "–");
      gtk_label_set_text (self->act_label, "–");
      gtk_label_set_text (self->tokens_label, "–");
      rs_plot_widget_invalidate (self->weights_plot);
      return;
    }
  RsExpertSummary sum;
  g_autoptr (GArray) top = g_array_new (FALSE, FALSE, sizeof (RsExpertToken));
  rs_expert_summary (self->trace, self->layer, self->expert, &sum, top, 12);
  g_autofree char *load = g_strdup_printf (_("%lld of %lld tokens (%.1f %%)"),
                                           (long long) sum.count, (long long) sum.n_tokens,
                                           sum.n_tokens > 0 ? 100.0 * sum.count / sum.n_tokens : 0.0);
  gtk_label_set_text (self->load_label, load);
  g_autofree char *prob = isnan (sum.mean_prob) ? g_strdup ("–") : g_strdup_printf ("%.4f", sum.mean_prob);
  gtk_label_set_text (self->prob_label, prob);
  g_autofree char *weight = isnan (sum.mean_weight) ? g_strdup ("–") : g_strdup_printf ("%.4f", sum.mean_weight);
  gtk_label_set_text (self->weight_label, weight);
  if (sum.max_act_token >= 0)
    {
      g_autofree char *tok = token_label (self->trace, sum.max_act_token);
      g_autofree char *act = g_strdup_printf (_("%.3g at token %lld “%s”, channel %d"),
                                              sum.max_act, (long long) sum.max_act_token, tok, sum.max_act_channel);
      gtk_label_set_text (self->act_label, act);
    }
  else
    gtk_label_set_text (self->act_label, "–");
  if (top->len == 0)
    gtk_label_set_text (self->tokens_label, _("No token was routed to this expert."));
  else
    {
      g_autoptr (GString) s = g_string_new (NULL);
      for (guint i = 0; i < top->len; i++)
        {
          const RsExpertToken *et = &g_array_index (top, RsExpertToken, i);
          g_autofree char *tok = token_label (self->trace, et->first);
          g_autofree char *esc = g_markup_escape_text (tok, -1);
          g_string_append_printf (s, "%s<b>%s</b> ×%d <small>(%.2f)</small>", i ? "  " : "", esc, et->count,
                                  et->weight);
        }
      gtk_label_set_markup (self->tokens_label, s->str);
    }
  rs_plot_widget_invalidate (self->weights_plot);
}

static void
prepare_weights (RsPlot *plot, gpointer user_data)
{
  RsExpertInspector *self = user_data;
  rs_plot_clear_lines (plot);
  rs_plot_set_title (plot, _("Gate weight per token"));
  rs_plot_set_x_label (plot, _("Token"));
  if (self->trace == NULL || self->layer < 0 || self->trace->n_tokens == 0)
    return;
  g_autofree double *w = g_new (double, self->trace->n_tokens);
  rs_expert_weights (self->trace, self->layer, self->expert, w);
  rs_plot_add_line (plot, NULL, NULL, w, (int) self->trace->n_tokens);
}

static gboolean
update_idle_cb (gpointer data)
{
  RsExpertInspector *self = data;
  self->update_idle = 0;
  update_details (self);
  return G_SOURCE_REMOVE;
}

/* At most once per main loop turn: a live run changes the trace often. */
static void
queue_update (RsExpertInspector *self)
{
  if (self->update_idle == 0)
    self->update_idle = g_idle_add_full (G_PRIORITY_LOW, update_idle_cb, self, NULL);
}

void
rs_expert_inspector_set_model (RsExpertInspector *self, const RsModelInfo *info)
{
  self->info = info;
  self->trace = NULL;
  self->layer = self->expert = -1;
  update_details (self);
}

void
rs_expert_inspector_trace_changed (RsExpertInspector *self, const RsTrace *trace, gint64 t0)
{
  self->trace = trace;
  if (self->layer >= 0)
    queue_update (self);
}

void
rs_expert_inspector_set_expert (RsExpertInspector *self, int layer, int expert)
{
  if (self->info == NULL || layer < 0 || layer >= self->info->n_layer || expert < 0 || expert >= self->info->n_expert)
    layer = expert = -1;
  self->layer = layer;
  self->expert = expert;
  update_details (self);
}

static void
on_disable (RsExpertInspector *self)
{
  if (self->layer >= 0)
    gtk_widget_activate_action (GTK_WIDGET (self), "win.disable-expert", "(ii)", self->layer, self->expert);
}

static void
on_force (RsExpertInspector *self)
{
  if (self->layer >= 0)
    gtk_widget_activate_action (GTK_WIDGET (self), "win.force-expert", "(ii)", self->layer, self->expert);
}

static void
on_bias (RsExpertInspector *self)
{
  if (self->layer >= 0)
    gtk_widget_activate_action (GTK_WIDGET (self), "win.bias-expert", "(iid)", self->layer, self->expert,
                                gtk_range_get_value (GTK_RANGE (self->bias_scale)));
}

static void
on_value_changed (GtkSpinButton *spin, RsExpertInspector *self)
{
  int index = GPOINTER_TO_INT (g_object_get_data (G_OBJECT (spin), "rs-index"));
  gtk_widget_activate_action (GTK_WIDGET (self), "win.set-intervention-value", "(id)", index,
                              gtk_spin_button_get_value (spin));
}

static void
on_from_changed (GtkSpinButton *spin, RsExpertInspector *self)
{
  int index = GPOINTER_TO_INT (g_object_get_data (G_OBJECT (spin), "rs-index"));
  gtk_widget_activate_action (GTK_WIDGET (self), "win.set-intervention-from", "(ix)", index,
                              (gint64) gtk_spin_button_get_value (spin));
}

static GtkWidget *
intervention_row (RsExpertInspector *self, const RsIntervention *iv, int index)
{
  GtkWidget *rows = gtk_box_new (GTK_ORIENTATION_VERTICAL, 4);
  gtk_widget_set_margin_start (rows, 8);
  gtk_widget_set_margin_end (rows, 4);
  gtk_widget_set_margin_top (rows, 4);
  gtk_widget_set_margin_bottom (rows, 4);

  GtkWidget *top = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 6);
  g_autofree char *text = rs_intervention_describe (iv);
  GtkWidget *label = gtk_label_new (text);
  gtk_label_set_xalign (GTK_LABEL (label), 0);
  gtk_label_set_wrap (GTK_LABEL (label), TRUE);
  gtk_widget_set_hexpand (label, TRUE);
  gtk_box_append (GTK_BOX (top), label);
  GtkWidget *remove = gtk_button_new_from_icon_name ("list-remove-symbolic");
  gtk_widget_set_valign (remove, GTK_ALIGN_CENTER);
  gtk_widget_add_css_class (remove, "flat");
  gtk_widget_set_tooltip_text (remove, _("Remove this intervention"));
  gtk_actionable_set_action_name (GTK_ACTIONABLE (remove), "win.remove-intervention");
  gtk_actionable_set_action_target (GTK_ACTIONABLE (remove), "i", index);
  gtk_box_append (GTK_BOX (top), remove);
  gtk_box_append (GTK_BOX (rows), top);

  GtkWidget *bottom = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 6);
  GtkWidget *from_label = gtk_label_new (_("From token"));
  gtk_widget_add_css_class (from_label, "dim-label");
  gtk_box_append (GTK_BOX (bottom), from_label);
  GtkWidget *from = gtk_spin_button_new_with_range (0, self->info ? MAX (self->info->n_ctx, 1) : 1 << 20, 1);
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (from), (double) iv->from_token);
  gtk_widget_set_tooltip_text (from, _("The first token position it applies to (0: the whole sequence, prompt "
                                       "included; earlier tokens change when replayed)"));
  g_object_set_data (G_OBJECT (from), "rs-index", GINT_TO_POINTER (index));
  g_signal_connect (from, "value-changed", G_CALLBACK (on_from_changed), self);
  g_object_set_data (G_OBJECT (rows), "rs-label", label);
  g_object_set_data (G_OBJECT (rows), "rs-from", from);
  gtk_box_append (GTK_BOX (bottom), from);

  double lo = 0, hi = 0, step = 0;
  int digits = 0;
  switch (iv->kind)
    {
    case RS_INTERVENE_BIAS: lo = -50; hi = 50; step = 0.5; digits = 1; break;
    case RS_INTERVENE_SOFT_BIAS: lo = -2; hi = 2; step = 0.05; digits = 2; break;
    case RS_INTERVENE_TOP_K: lo = 1; hi = self->info ? self->info->n_expert : 64; step = 1; break;
    case RS_INTERVENE_TOP_P: lo = 0.01; hi = 1; step = 0.05; digits = 2; break;
    default: break;
    }
  if (step > 0)
    {
      GtkWidget *value_label = gtk_label_new (_("Value"));
      gtk_widget_add_css_class (value_label, "dim-label");
      gtk_widget_set_margin_start (value_label, 6);
      gtk_box_append (GTK_BOX (bottom), value_label);
      GtkWidget *spin = gtk_spin_button_new_with_range (lo, hi, step);
      gtk_spin_button_set_digits (GTK_SPIN_BUTTON (spin), digits);
      gtk_spin_button_set_value (GTK_SPIN_BUTTON (spin), iv->value);
      gtk_widget_set_tooltip_text (spin, _("Change the value (applies from the next token)"));
      g_object_set_data (G_OBJECT (spin), "rs-index", GINT_TO_POINTER (index));
      g_signal_connect (spin, "value-changed", G_CALLBACK (on_value_changed), self);
      gtk_box_append (GTK_BOX (bottom), spin);
      g_object_set_data (G_OBJECT (rows), "rs-value", spin);
    }
  gtk_box_append (GTK_BOX (rows), bottom);
  return rows;
}

static gboolean
same_target (const RsIntervention *a, const RsIntervention *b)
{
  if (a->kind != b->kind || a->layer_first != b->layer_first || a->layer_last != b->layer_last
      || a->n_experts != b->n_experts)
    return FALSE;
  for (int i = 0; i < a->n_experts; i++)
    if (a->experts[i] != b->experts[i])
      return FALSE;
  return TRUE;
}

static void
set_spin_quietly (GtkSpinButton *spin, double value, GCallback handler, gpointer data)
{
  if (spin == NULL || gtk_spin_button_get_value (spin) == value)
    return;
  g_signal_handlers_block_by_func (spin, handler, data);
  gtk_spin_button_set_value (spin, value);
  g_signal_handlers_unblock_by_func (spin, handler, data);
}

void
rs_expert_inspector_set_interventions (RsExpertInspector *self, const RsIntervention *ivs, int n)
{
  /* The same interventions with other values (the user is editing one):
   * update the rows in place, so that the spin button being used stays. */
  gboolean same = self->shown->len == (guint) n;
  for (int i = 0; same && i < n; i++)
    same = same_target (&g_array_index (self->shown, RsIntervention, i), &ivs[i]);
  g_array_set_size (self->shown, 0);
  g_array_append_vals (self->shown, ivs, n);
  if (same && n > 0)
    {
      for (int i = 0; i < n; i++)
        {
          GtkListBoxRow *row = gtk_list_box_get_row_at_index (self->ivs_list, i);
          GtkWidget *rows = row ? gtk_list_box_row_get_child (row) : NULL;
          if (rows == NULL)
            continue;
          g_autofree char *text = rs_intervention_describe (&ivs[i]);
          gtk_label_set_text (g_object_get_data (G_OBJECT (rows), "rs-label"), text);
          set_spin_quietly (g_object_get_data (G_OBJECT (rows), "rs-from"), (double) ivs[i].from_token,
                            G_CALLBACK (on_from_changed), self);
          set_spin_quietly (g_object_get_data (G_OBJECT (rows), "rs-value"), ivs[i].value,
                            G_CALLBACK (on_value_changed), self);
        }
      if (self->layer >= 0)
        queue_update (self);
      return;
    }
  GtkWidget *child;
  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self->ivs_list))) != NULL)
    gtk_list_box_remove (self->ivs_list, child);
  for (int i = 0; i < n; i++)
    gtk_list_box_append (self->ivs_list, intervention_row (self, &ivs[i], i));
  if (self->layer >= 0)
    queue_update (self);
}

static void
rs_expert_inspector_dispose (GObject *object)
{
  RsExpertInspector *self = RS_EXPERT_INSPECTOR (object);
  g_clear_handle_id (&self->update_idle, g_source_remove);
  gtk_widget_dispose_template (GTK_WIDGET (self), RS_TYPE_EXPERT_INSPECTOR);
  GtkWidget *child;
  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self))) != NULL)
    gtk_widget_unparent (child);
  G_OBJECT_CLASS (rs_expert_inspector_parent_class)->dispose (object);
}

static void
rs_expert_inspector_finalize (GObject *object)
{
  g_array_unref (RS_EXPERT_INSPECTOR (object)->shown);
  G_OBJECT_CLASS (rs_expert_inspector_parent_class)->finalize (object);
}

static void
rs_expert_inspector_class_init (RsExpertInspectorClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  object_class->dispose = rs_expert_inspector_dispose;
  object_class->finalize = rs_expert_inspector_finalize;
  g_type_ensure (RS_TYPE_PLOT_WIDGET);
  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/io/github/routescope/Routescope/rs-expert-inspector.ui");
  gtk_widget_class_bind_template_child (widget_class, RsExpertInspector, title_label);
  gtk_widget_class_bind_template_child (widget_class, RsExpertInspector, hint_label);
  gtk_widget_class_bind_template_child (widget_class, RsExpertInspector, details_box);
  gtk_widget_class_bind_template_child (widget_class, RsExpertInspector, load_label);
  gtk_widget_class_bind_template_child (widget_class, RsExpertInspector, prob_label);
  gtk_widget_class_bind_template_child (widget_class, RsExpertInspector, weight_label);
  gtk_widget_class_bind_template_child (widget_class, RsExpertInspector, act_label);
  gtk_widget_class_bind_template_child (widget_class, RsExpertInspector, tokens_label);
  gtk_widget_class_bind_template_child (widget_class, RsExpertInspector, weights_plot);
  gtk_widget_class_bind_template_child (widget_class, RsExpertInspector, disable_button);
  gtk_widget_class_bind_template_child (widget_class, RsExpertInspector, force_button);
  gtk_widget_class_bind_template_child (widget_class, RsExpertInspector, bias_scale);
  gtk_widget_class_bind_template_child (widget_class, RsExpertInspector, bias_button);
  gtk_widget_class_bind_template_child (widget_class, RsExpertInspector, ivs_list);
  gtk_widget_class_set_css_name (widget_class, "rsexpertinspector");
}

static void
rs_expert_inspector_init (RsExpertInspector *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  self->layer = self->expert = -1;
  self->shown = g_array_new (FALSE, FALSE, sizeof (RsIntervention));
  rs_plot_widget_set_prepare_func (self->weights_plot, prepare_weights, self);
  g_signal_connect_swapped (self->disable_button, "clicked", G_CALLBACK (on_disable), self);
  g_signal_connect_swapped (self->force_button, "clicked", G_CALLBACK (on_force), self);
  g_signal_connect_swapped (self->bias_button, "clicked", G_CALLBACK (on_bias), self);
  GtkWidget *placeholder = gtk_label_new (_("No interventions: the model routes as trained."));
  gtk_label_set_wrap (GTK_LABEL (placeholder), TRUE);
  gtk_widget_add_css_class (placeholder, "dim-label");
  gtk_widget_set_margin_top (placeholder, 8);
  gtk_widget_set_margin_bottom (placeholder, 8);
  gtk_widget_set_margin_start (placeholder, 8);
  gtk_widget_set_margin_end (placeholder, 8);
  gtk_list_box_set_placeholder (self->ivs_list, placeholder);
  update_details (self);
}
