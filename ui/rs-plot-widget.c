/* rs-plot-widget.c: a GtkWidget that draws an RsPlot.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "rs-plot-widget.h"

struct _RsPlotWidget {
  GtkWidget         parent_instance;
  RsPlot           *plot;
  gboolean          stale;
  RsPlotPrepareFunc prepare;
  gpointer          prepare_data;
  RsPlotTooltipFunc tooltip;
  gpointer          tooltip_data;
  int               hover_row, hover_col;
  int               cursor_row, cursor_col;
  GtkSettings      *settings;
  gulong            settings_handler;
};

G_DEFINE_FINAL_TYPE (RsPlotWidget, rs_plot_widget, GTK_TYPE_WIDGET)

enum { SIG_CELL_ACTIVATED, SIG_CELL_HOVERED, N_SIGNALS };
static guint signals[N_SIGNALS];

GtkWidget *
rs_plot_widget_new (void)
{
  return g_object_new (RS_TYPE_PLOT_WIDGET, NULL);
}

RsPlot *
rs_plot_widget_get_plot (RsPlotWidget *self)
{
  return self->plot;
}

void
rs_plot_widget_set_prepare_func (RsPlotWidget *self, RsPlotPrepareFunc func, gpointer user_data)
{
  self->prepare = func;
  self->prepare_data = user_data;
  rs_plot_widget_invalidate (self);
}

void
rs_plot_widget_set_tooltip_func (RsPlotWidget *self, RsPlotTooltipFunc func, gpointer user_data)
{
  self->tooltip = func;
  self->tooltip_data = user_data;
}

void
rs_plot_widget_invalidate (RsPlotWidget *self)
{
  self->stale = TRUE;
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

void
rs_plot_widget_ensure_prepared (RsPlotWidget *self)
{
  if (self->stale && self->prepare != NULL)
    self->prepare (self->plot, self->prepare_data);
  self->stale = FALSE;
}

gboolean
rs_plot_widget_get_dark (RsPlotWidget *self)
{
  GtkSettings *settings = gtk_widget_get_settings (GTK_WIDGET (self));
  gboolean dark = FALSE;
  g_autofree char *theme = NULL;
  g_object_get (settings, "gtk-application-prefer-dark-theme", &dark, "gtk-theme-name", &theme, NULL);
  return dark || (theme != NULL && g_str_has_suffix (theme, "-dark"));
}

void
rs_plot_widget_set_cursor (RsPlotWidget *self, int row, int col)
{
  self->cursor_row = row;
  self->cursor_col = col;
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

gboolean
rs_plot_widget_get_cursor (RsPlotWidget *self, int *row, int *col)
{
  if (row)
    *row = self->cursor_row;
  if (col)
    *col = self->cursor_col;
  return self->cursor_row >= 0 && self->cursor_col >= 0;
}

static void
draw_cell_box (cairo_t *cr, const RsPlotLayout *L, int row, int col, double r, double g, double b,
               double width)
{
  if (row < 0 || col < 0 || row >= L->rows || col >= L->cols || L->plot_width <= 0)
    return;
  double cw = L->plot_width / L->cols, ch = L->plot_height / L->rows;
  double pad = width * 0.5 + 1;
  cairo_rectangle (cr, L->plot_x + col * cw - pad, L->plot_y + row * ch - pad, cw + 2 * pad, ch + 2 * pad);
  cairo_set_source_rgb (cr, 0, 0, 0);
  cairo_set_line_width (cr, width + 2);
  cairo_stroke_preserve (cr);
  cairo_set_source_rgb (cr, r, g, b);
  cairo_set_line_width (cr, width);
  cairo_stroke (cr);
}

void
rs_plot_widget_draw (RsPlotWidget *self, cairo_t *cr, double width, double height)
{
  rs_plot_widget_ensure_prepared (self);
  rs_plot_set_dark (self->plot, rs_plot_widget_get_dark (self));
  rs_plot_draw (self->plot, cr, width, height);
  RsPlotLayout L;
  rs_plot_get_layout (self->plot, &L);
  if (self->hover_row >= 0)
    draw_cell_box (cr, &L, self->hover_row, self->hover_col, 1, 1, 1, 1);
  if (self->cursor_row >= 0 && gtk_widget_has_focus (GTK_WIDGET (self)))
    draw_cell_box (cr, &L, self->cursor_row, self->cursor_col, 0.21, 0.52, 0.89, 2);
  else if (self->cursor_row >= 0)
    draw_cell_box (cr, &L, self->cursor_row, self->cursor_col, 1, 1, 1, 2);
}

static void
rs_plot_widget_snapshot (GtkWidget *widget, GtkSnapshot *snapshot)
{
  RsPlotWidget *self = RS_PLOT_WIDGET (widget);
  int w = gtk_widget_get_width (widget), h = gtk_widget_get_height (widget);
  if (w <= 0 || h <= 0)
    return;
  cairo_t *cr = gtk_snapshot_append_cairo (snapshot, &GRAPHENE_RECT_INIT (0, 0, w, h));
  rs_plot_widget_draw (self, cr, w, h);
  cairo_destroy (cr);
}

static void
rs_plot_widget_measure (GtkWidget *widget, GtkOrientation orientation, int for_size, int *minimum,
                        int *natural, int *minimum_baseline, int *natural_baseline)
{
  *minimum = orientation == GTK_ORIENTATION_HORIZONTAL ? 160 : 120;
  *natural = orientation == GTK_ORIENTATION_HORIZONTAL ? 640 : 400;
}

static void
set_hover (RsPlotWidget *self, int row, int col)
{
  if (row == self->hover_row && col == self->hover_col)
    return;
  self->hover_row = row;
  self->hover_col = col;
  gtk_widget_queue_draw (GTK_WIDGET (self));
  g_signal_emit (self, signals[SIG_CELL_HOVERED], 0, row, col);
}

static void
on_motion (GtkEventControllerMotion *motion, double x, double y, RsPlotWidget *self)
{
  int row = -1, col = -1;
  if (!rs_plot_heatmap_cell_at (self->plot, x, y, &row, &col))
    row = col = -1;
  set_hover (self, row, col);
}

static void
on_leave (GtkEventControllerMotion *motion, RsPlotWidget *self)
{
  set_hover (self, -1, -1);
}

static void
on_pressed (GtkGestureClick *click, int n_press, double x, double y, RsPlotWidget *self)
{
  int row, col;
  gtk_widget_grab_focus (GTK_WIDGET (self));
  if (!rs_plot_heatmap_cell_at (self->plot, x, y, &row, &col))
    return;
  rs_plot_widget_set_cursor (self, row, col);
  g_signal_emit (self, signals[SIG_CELL_ACTIVATED], 0, row, col);
}

static gboolean
on_key (GtkEventControllerKey *key, guint keyval, guint keycode, GdkModifierType state,
        RsPlotWidget *self)
{
  RsPlotLayout L;
  rs_plot_get_layout (self->plot, &L);
  if (L.rows <= 0 || L.cols <= 0)
    return FALSE;
  int row = MAX (self->cursor_row, 0), col = MAX (self->cursor_col, 0);
  int step = (state & GDK_CONTROL_MASK) ? 8 : 1;
  switch (keyval)
    {
    case GDK_KEY_Left: case GDK_KEY_KP_Left: col -= step; break;
    case GDK_KEY_Right: case GDK_KEY_KP_Right: col += step; break;
    case GDK_KEY_Up: case GDK_KEY_KP_Up: row -= step; break;
    case GDK_KEY_Down: case GDK_KEY_KP_Down: row += step; break;
    case GDK_KEY_Home: col = 0; break;
    case GDK_KEY_End: col = L.cols - 1; break;
    case GDK_KEY_Return: case GDK_KEY_KP_Enter: case GDK_KEY_ISO_Enter:
      if (self->cursor_row >= 0)
        g_signal_emit (self, signals[SIG_CELL_ACTIVATED], 0, self->cursor_row, self->cursor_col);
      return TRUE;
    default:
      return FALSE;
    }
  rs_plot_widget_set_cursor (self, CLAMP (row, 0, L.rows - 1), CLAMP (col, 0, L.cols - 1));
  g_signal_emit (self, signals[SIG_CELL_ACTIVATED], 0, self->cursor_row, self->cursor_col);
  return TRUE;
}

static gboolean
on_query_tooltip (GtkWidget *widget, int x, int y, gboolean keyboard, GtkTooltip *tooltip,
                  RsPlotWidget *self)
{
  int row, col;
  if (self->tooltip == NULL)
    return FALSE;
  if (keyboard)
    {
      if (!rs_plot_widget_get_cursor (self, &row, &col))
        return FALSE;
    }
  else if (!rs_plot_heatmap_cell_at (self->plot, x, y, &row, &col))
    return FALSE;
  g_autofree char *markup = self->tooltip (row, col, self->tooltip_data);
  if (markup == NULL)
    return FALSE;
  gtk_tooltip_set_markup (tooltip, markup);
  RsPlotLayout L;
  rs_plot_get_layout (self->plot, &L);
  double cw = L.plot_width / L.cols, ch = L.plot_height / L.rows;
  gtk_tooltip_set_tip_area (tooltip, &(GdkRectangle) { (int) (L.plot_x + col * cw), (int) (L.plot_y + row * ch),
                                                       MAX (1, (int) cw), MAX (1, (int) ch) });
  return TRUE;
}

static void
on_settings_changed (GtkSettings *settings, GParamSpec *pspec, RsPlotWidget *self)
{
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

static void
rs_plot_widget_root (GtkWidget *widget)
{
  RsPlotWidget *self = RS_PLOT_WIDGET (widget);
  GTK_WIDGET_CLASS (rs_plot_widget_parent_class)->root (widget);
  self->settings = g_object_ref (gtk_widget_get_settings (widget));
  self->settings_handler = g_signal_connect (self->settings, "notify::gtk-application-prefer-dark-theme",
                                             G_CALLBACK (on_settings_changed), self);
}

static void
rs_plot_widget_unroot (GtkWidget *widget)
{
  RsPlotWidget *self = RS_PLOT_WIDGET (widget);
  if (self->settings)
    {
      g_clear_signal_handler (&self->settings_handler, self->settings);
      g_clear_object (&self->settings);
    }
  GTK_WIDGET_CLASS (rs_plot_widget_parent_class)->unroot (widget);
}

static void
rs_plot_widget_finalize (GObject *object)
{
  RsPlotWidget *self = RS_PLOT_WIDGET (object);
  rs_plot_free (self->plot);
  G_OBJECT_CLASS (rs_plot_widget_parent_class)->finalize (object);
}

static void
rs_plot_widget_class_init (RsPlotWidgetClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  object_class->finalize = rs_plot_widget_finalize;
  widget_class->snapshot = rs_plot_widget_snapshot;
  widget_class->measure = rs_plot_widget_measure;
  widget_class->root = rs_plot_widget_root;
  widget_class->unroot = rs_plot_widget_unroot;
  gtk_widget_class_set_css_name (widget_class, "rsplot");
  gtk_widget_class_set_accessible_role (widget_class, GTK_ACCESSIBLE_ROLE_IMG);

  signals[SIG_CELL_ACTIVATED] = g_signal_new ("cell-activated", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                              0, NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_INT, G_TYPE_INT);
  signals[SIG_CELL_HOVERED] = g_signal_new ("cell-hovered", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                            0, NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_INT, G_TYPE_INT);
}

static void
rs_plot_widget_init (RsPlotWidget *self)
{
  self->plot = rs_plot_new ();
  self->hover_row = self->hover_col = -1;
  self->cursor_row = self->cursor_col = -1;
  self->stale = TRUE;
  gtk_widget_set_focusable (GTK_WIDGET (self), TRUE);
  gtk_widget_set_has_tooltip (GTK_WIDGET (self), TRUE);
  gtk_widget_set_hexpand (GTK_WIDGET (self), TRUE);
  gtk_widget_set_vexpand (GTK_WIDGET (self), TRUE);

  GtkEventController *motion = gtk_event_controller_motion_new ();
  g_signal_connect (motion, "motion", G_CALLBACK (on_motion), self);
  g_signal_connect (motion, "leave", G_CALLBACK (on_leave), self);
  gtk_widget_add_controller (GTK_WIDGET (self), motion);

  GtkGesture *click = gtk_gesture_click_new ();
  g_signal_connect (click, "pressed", G_CALLBACK (on_pressed), self);
  gtk_widget_add_controller (GTK_WIDGET (self), GTK_EVENT_CONTROLLER (click));

  GtkEventController *key = gtk_event_controller_key_new ();
  g_signal_connect (key, "key-pressed", G_CALLBACK (on_key), self);
  gtk_widget_add_controller (GTK_WIDGET (self), key);

  g_signal_connect (self, "query-tooltip", G_CALLBACK (on_query_tooltip), self);
}
