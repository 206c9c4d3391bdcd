/* rs-token-view.c: the routing of one token.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "rs-token-view.h"

#include <glib/gi18n.h>
#include <math.h>

#include "rs-routing-stats.h"
#include "rs-settings.h"

struct _RsTokenView {
  GtkWidget        parent_instance;
  GtkLabel        *token_label;
  GtkToggleButton *compare_toggle;
  GtkStack        *stack;
  RsPlotWidget    *plot;
  RsPlotWidget    *base_plot;
  GtkLabel        *changes_label;

  const RsModelInfo *info;
  const RsTrace   *trace;
  GArray          *ivs;
  gint64           token;
  float           *scores;
  guint8          *mask;
};

G_DEFINE_FINAL_TYPE (RsTokenView, rs_token_view, GTK_TYPE_WIDGET)

enum { SIG_EXPERT_ACTIVATED, N_SIGNALS };
static guint signals[N_SIGNALS];

GtkWidget *
rs_token_view_new (void)
{
  return g_object_new (RS_TYPE_TOKEN_VIEW, NULL);
}

RsPlotWidget *
rs_token_view_get_plot_widget (RsTokenView *self)
{
  return self->plot;
}

gint64
rs_token_view_get_token (RsTokenView *self)
{
  return self->token;
}

static gboolean
token_valid (RsTokenView *self)
{
  return self->info != NULL && self->trace != NULL && self->token >= 0 && self->token < self->trace->n_tokens;
}

static RsColormap
colormap (void)
{
  g_autofree char *name = g_settings_get_string (rs_settings_get (), "colormap");
  return g_strcmp0 (name, "magma") == 0 ? RS_COLORMAP_MAGMA : RS_COLORMAP_VIRIDIS;
}

/* The token's text for titles: quoted, whitespace made visible. */
static char *
token_display (const RsTrace *tr, gint64 t)
{
  const char *text = g_ptr_array_index (tr->token_text, t);
  GString *s = g_string_new (NULL);
  for (const char *p = text ? text : ""; *p; p++)
    {
      if (*p == '\n')
        g_string_append (s, "↵");
      else if (*p == '\t')
        g_string_append (s, "→");
      else if (*p == ' ')
        g_string_append (s, "·");
      else
        g_string_append_c (s, *p);
    }
  return g_string_free (s, FALSE);
}

static void
fill (RsTokenView *self, RsPlot *plot, gboolean untouched)
{
  if (!token_valid (self))
    {
      rs_plot_set_heatmap (plot, NULL, 0, 0, RS_COLORMAP_VIRIDIS, FALSE, NULL);
      return;
    }
  const int L = self->info->n_layer, E = self->info->n_expert;
  rs_token_scores (self->trace, self->token, &self->info->routing, untouched, self->scores, self->mask);
  gboolean probs = self->info->routing.score != RS_SCORE_LOGITS;
  rs_plot_set_heatmap (plot, self->scores, L, E, colormap (), FALSE,
                       probs ? _("router probability") : _("router logit"));
  rs_plot_set_heatmap_outline (plot, self->mask);
  g_autofree char *tok = token_display (self->trace, self->token);
  g_autofree char *title = untouched
                             ? g_strdup_printf (_("Token %lld “%s” without interventions"),
                                                (long long) self->token, tok)
                             : g_strdup_printf (_("Token %lld “%s”"), (long long) self->token, tok);
  rs_plot_set_title (plot, title);
  rs_plot_set_x_label (plot, untouched ? _("Expert (outlined: the untouched router's choice)")
                                       : _("Expert (outlined: the experts that ran)"));
  rs_plot_set_y_label (plot, _("Layer"));
}

static void
prepare_main (RsPlot *plot, gpointer user_data)
{
  fill (user_data, plot, FALSE);
}

static void
prepare_base (RsPlot *plot, gpointer user_data)
{
  fill (user_data, plot, TRUE);
}

static gboolean
interventions_active (RsTokenView *self)
{
  for (guint i = 0; i < self->ivs->len; i++)
    if (g_array_index (self->ivs, RsIntervention, i).from_token <= self->token)
      return TRUE;
  return token_valid (self) && rs_token_routing_changed (self->trace, self->token);
}

static void
update (RsTokenView *self)
{
  if (!token_valid (self))
    {
      gtk_stack_set_visible_child_name (self->stack, "empty");
      gtk_label_set_text (self->token_label, "");
      gtk_label_set_text (self->changes_label, "");
      gtk_widget_set_sensitive (GTK_WIDGET (self->compare_toggle), FALSE);
      return;
    }
  gtk_stack_set_visible_child_name (self->stack, "plots");
  const RsTrace *tr = self->trace;
  g_autofree char *tok = token_display (tr, self->token);
  gboolean prompt = g_array_index (tr->is_prompt, guint8, self->token) != 0;
  g_autofree char *kind = NULL;
  if (prompt)
    kind = g_strdup (_("prompt token"));
  else
    kind = g_strdup_printf (_("generated, p = %.3f"), g_array_index (tr->token_prob, float, self->token));
  g_autofree char *markup = g_markup_printf_escaped (_("Token %lld <b>“%s”</b> (id %d, %s)"),
                                                     (long long) self->token, tok,
                                                     g_array_index (tr->token_ids, int32_t, self->token), kind);
  gtk_label_set_markup (self->token_label, markup);

  gboolean active = interventions_active (self);
  gtk_widget_set_sensitive (GTK_WIDGET (self->compare_toggle), active);
  gtk_widget_set_visible (GTK_WIDGET (self->base_plot), active && gtk_toggle_button_get_active (self->compare_toggle));

  g_autoptr (GString) changes = g_string_new (NULL);
  int n = rs_token_routing_changes (tr, self->token, changes);
  if (n > 0)
    {
      g_strdelimit (changes->str, "\n", ';');
      g_autofree char *text = g_strdup_printf (
        g_dngettext (GETTEXT_PACKAGE, "Interventions changed the experts of %d layer (layer: untouched → ran): %s",
                     "Interventions changed the experts of %d layers (layer: untouched → ran): %s", n),
        n, changes->str);
      gtk_label_set_text (self->changes_label, text);
    }
  else if (active)
    gtk_label_set_text (self->changes_label, _("Interventions are active but did not change this token's experts."));
  else
    gtk_label_set_text (self->changes_label, "");
  rs_plot_widget_invalidate (self->plot);
  rs_plot_widget_invalidate (self->base_plot);
}

static char *
tooltip_for (RsTokenView *self, int layer, int expert, gboolean untouched)
{
  if (!token_valid (self) || layer >= self->info->n_layer)
    return NULL;
  const RsTrace *tr = self->trace;
  if (!self->info->layer_is_moe[layer])
    return g_strdup_printf (_("Layer %d has no experts (dense feed-forward)"), layer);
  const int L = tr->n_layer, E = tr->n_expert, K = tr->k_slots;
  float p;
  if (untouched)
    {
      rs_token_scores (tr, self->token, &self->info->routing, TRUE, self->scores, NULL);
      p = self->scores[layer * E + expert];
    }
  else
    p = g_array_index (tr->router_scores, float, (self->token * L + layer) * E + expert);
  float z = g_array_index (tr->router_logits, float, (self->token * L + layer) * E + expert);
  const GArray *ids = untouched ? tr->base_topk_ids : tr->topk_ids;
  const GArray *ws = untouched ? tr->base_topk_weights : tr->topk_weights;
  g_autofree char *sel = NULL;
  for (int j = 0; j < K; j++)
    if (g_array_index (ids, int32_t, (self->token * L + layer) * K + j) == expert)
      sel = g_strdup_printf (_("selected (rank %d), weight %.4f"), j + 1,
                             g_array_index (ws, float, (self->token * L + layer) * K + j));
  g_autofree char *head = g_strdup_printf (_("Layer %d, expert %d"), layer, expert);
  return g_markup_printf_escaped ("<b>%s</b>\n%s %.4f · %s %.3f\n%s", head,
                                  _("probability"), p, _("raw logit"), z, sel ? sel : _("not selected"));
}

static char *
tooltip_main (int row, int col, gpointer user_data)
{
  return tooltip_for (user_data, row, col, FALSE);
}

static char *
tooltip_base (int row, int col, gpointer user_data)
{
  return tooltip_for (user_data, row, col, TRUE);
}

static void
on_activated (RsPlotWidget *plot, int row, int col, RsTokenView *self)
{
  if (self->info && row >= 0 && row < self->info->n_layer && self->info->layer_is_moe[row])
    g_signal_emit (self, signals[SIG_EXPERT_ACTIVATED], 0, row, col);
}

void
rs_token_view_set_model (RsTokenView *self, const RsModelInfo *info)
{
  self->info = info;
  self->trace = NULL;
  self->token = -1;
  g_clear_pointer (&self->scores, g_free);
  g_clear_pointer (&self->mask, g_free);
  if (info)
    {
      self->scores = g_new (float, (gsize) info->n_layer * info->n_expert);
      self->mask = g_new (guint8, (gsize) info->n_layer * info->n_expert);
    }
  update (self);
}

void
rs_token_view_trace_changed (RsTokenView *self, const RsTrace *trace, gint64 t0)
{
  gboolean replaced = trace != self->trace;
  self->trace = trace;
  if (replaced || self->token >= t0 || (trace && self->token >= trace->n_tokens))
    update (self);
}

void
rs_token_view_set_interventions (RsTokenView *self, const RsIntervention *ivs, int n)
{
  g_array_set_size (self->ivs, 0);
  g_array_append_vals (self->ivs, ivs, n);
  update (self);
}

void
rs_token_view_set_token (RsTokenView *self, gint64 t)
{
  if (self->token == t)
    return;
  self->token = t;
  update (self);
}

static void
rs_token_view_dispose (GObject *object)
{
  gtk_widget_dispose_template (GTK_WIDGET (object), RS_TYPE_TOKEN_VIEW);
  GtkWidget *child;
  while ((child = gtk_widget_get_first_child (GTK_WIDGET (object))) != NULL)
    gtk_widget_unparent (child);
  G_OBJECT_CLASS (rs_token_view_parent_class)->dispose (object);
}

static void
rs_token_view_finalize (GObject *object)
{
  RsTokenView *self = RS_TOKEN_VIEW (object);
  g_array_unref (self->ivs);
  g_free (self->scores);
  g_free (self->mask);
  G_OBJECT_CLASS (rs_token_view_parent_class)->finalize (object);
}

static void
rs_token_view_class_init (RsTokenViewClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  object_class->dispose = rs_token_view_dispose;
  object_class->finalize = rs_token_view_finalize;
  g_type_ensure (RS_TYPE_PLOT_WIDGET);
  gtk_widget_class_set_template_from_resource (widget_class, "/io/github/routescope/Routescope/rs-token-view.ui");
  gtk_widget_class_bind_template_child (widget_class, RsTokenView, token_label);
  gtk_widget_class_bind_template_child (widget_class, RsTokenView, compare_toggle);
  gtk_widget_class_bind_template_child (widget_class, RsTokenView, stack);
  gtk_widget_class_bind_template_child (widget_class, RsTokenView, plot);
  gtk_widget_class_bind_template_child (widget_class, RsTokenView, base_plot);
  gtk_widget_class_bind_template_child (widget_class, RsTokenView, changes_label);
  gtk_widget_class_set_css_name (widget_class, "rstokenview");
  signals[SIG_EXPERT_ACTIVATED] = g_signal_new ("expert-activated", G_TYPE_FROM_CLASS (klass),
                                                G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 2,
                                                G_TYPE_INT, G_TYPE_INT);
}

static void
on_colormap_changed (RsTokenView *self)
{
  rs_plot_widget_invalidate (self->plot);
  rs_plot_widget_invalidate (self->base_plot);
}

static void
rs_token_view_init (RsTokenView *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  self->ivs = g_array_new (FALSE, FALSE, sizeof (RsIntervention));
  self->token = -1;
  rs_plot_widget_set_prepare_func (self->plot, prepare_main, self);
  rs_plot_widget_set_prepare_func (self->base_plot, prepare_base, self);
  rs_plot_widget_set_tooltip_func (self->plot, tooltip_main, self);
  rs_plot_widget_set_tooltip_func (self->base_plot, tooltip_base, self);
  g_signal_connect (self->plot, "cell-activated", G_CALLBACK (on_activated), self);
  g_signal_connect (self->base_plot, "cell-activated", G_CALLBACK (on_activated), self);
  g_signal_connect_swapped (self->compare_toggle, "notify::active", G_CALLBACK (update), self);
  g_signal_connect_object (rs_settings_get (), "changed::colormap", G_CALLBACK (on_colormap_changed), self,
                           G_CONNECT_SWAPPED);
  update (self);
}
