/* rs-token-strip.c: the prompt and generated tokens as chips.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "rs-token-strip.h"

#include <glib/gi18n.h>
#include <math.h>

#define PAD_X 5
#define PAD_Y 3
#define GAP_X 3
#define GAP_Y 4
#define MARGIN 4
#define PROMPT_GAP 12
#define MIN_CHIP 14

typedef struct {
  char  *label;    /* whitespace made visible */
  PangoLayout *layout; /* shaped once, drawn every frame */
  gboolean prompt;
  int    text_w;
  double x, y, w;  /* layout, content coordinates */
} Chip;

struct _RsTokenStrip {
  GtkWidget      parent_instance;
  GArray        *chips;        /* Chip */
  GArray        *values;       /* double */
  gboolean       categorical;
  RsColormap     colormap;
  double         lo, hi;
  gboolean       have_range;
  char          *value_format;
  gint64         selected;
  int            layout_width; /* width the chips were laid out for (-1: stale) */
  int            content_h;
  int            line_h;
  PangoLayout   *layout;
  GtkAdjustment *hadj, *vadj;
  guint          hpolicy : 1;
  guint          vpolicy : 1;
};

enum { PROP_0, PROP_SELECTED, PROP_HADJUSTMENT, PROP_VADJUSTMENT, PROP_HSCROLL_POLICY, PROP_VSCROLL_POLICY, N_PROPS };
static GParamSpec *selected_pspec;

G_DEFINE_FINAL_TYPE_WITH_CODE (RsTokenStrip, rs_token_strip, GTK_TYPE_WIDGET,
                               G_IMPLEMENT_INTERFACE (GTK_TYPE_SCROLLABLE, NULL))

GtkWidget *
rs_token_strip_new (void)
{
  return g_object_new (RS_TYPE_TOKEN_STRIP, NULL);
}

static void
chip_clear (gpointer data)
{
  Chip *c = data;
  g_free (c->label);
  g_clear_object (&c->layout);
}

static char *
visible_text (const char *text)
{
  GString *s = g_string_new (NULL);
  for (const char *p = text ? text : ""; *p; p++)
    {
      if (*p == '\n')
        g_string_append (s, "↵");
      else if (*p == '\t')
        g_string_append (s, "→");
      else if (*p == ' ')
        g_string_append (s, "·");
      else if (*p == '\r')
        g_string_append (s, "␍");
      else
        g_string_append_c (s, *p);
    }
  if (s->len == 0)
    g_string_append (s, "∅");
  return g_string_free (s, FALSE);
}

static PangoLayout *
get_layout (RsTokenStrip *self)
{
  if (self->layout == NULL)
    {
      self->layout = gtk_widget_create_pango_layout (GTK_WIDGET (self), "Xg");
      int w, h;
      pango_layout_get_pixel_size (self->layout, &w, &h);
      self->line_h = h + 2 * PAD_Y;
    }
  return self->layout;
}

static void
measure_chip (RsTokenStrip *self, Chip *c)
{
  get_layout (self);
  g_clear_object (&c->layout);
  c->layout = gtk_widget_create_pango_layout (GTK_WIDGET (self), c->label);
  int w, h;
  pango_layout_get_pixel_size (c->layout, &w, &h);
  c->text_w = w;
  c->w = MAX (w + 2 * PAD_X, MIN_CHIP);
}

int
rs_token_strip_layout (RsTokenStrip *self, int width)
{
  get_layout (self);
  double x = MARGIN, y = MARGIN;
  gboolean prev_prompt = TRUE;
  for (guint i = 0; i < self->chips->len; i++)
    {
      Chip *c = &g_array_index (self->chips, Chip, i);
      if (i > 0 && prev_prompt && !c->prompt)
        x += PROMPT_GAP;
      if (x + c->w > width - MARGIN && x > MARGIN)
        {
          x = MARGIN;
          y += self->line_h + GAP_Y;
        }
      c->x = x;
      c->y = y;
      x += c->w + GAP_X;
      prev_prompt = c->prompt;
    }
  self->content_h = (int) (self->chips->len > 0 ? y + self->line_h + MARGIN : self->line_h + 2 * MARGIN);
  self->layout_width = width;
  return self->content_h;
}

static void
update_adjustments (RsTokenStrip *self)
{
  int w = gtk_widget_get_width (GTK_WIDGET (self)), h = gtk_widget_get_height (GTK_WIDGET (self));
  if (self->vadj)
    {
      double upper = MAX (self->content_h, h);
      double value = CLAMP (gtk_adjustment_get_value (self->vadj), 0, upper - h);
      gtk_adjustment_configure (self->vadj, value, 0, upper, self->line_h + GAP_Y, h * 0.9, h);
    }
  if (self->hadj)
    gtk_adjustment_configure (self->hadj, 0, 0, w, 10, w * 0.9, w);
}

static void
relayout (RsTokenStrip *self)
{
  int w = gtk_widget_get_width (GTK_WIDGET (self));
  if (w <= 0)
    {
      self->layout_width = -1;
      return;
    }
  rs_token_strip_layout (self, w);
  update_adjustments (self);
}

static void
ensure_visible (RsTokenStrip *self, gint64 t)
{
  if (self->vadj == NULL || t < 0 || t >= (gint64) self->chips->len)
    return;
  if (self->layout_width != gtk_widget_get_width (GTK_WIDGET (self)))
    relayout (self);
  Chip *c = &g_array_index (self->chips, Chip, t);
  double value = gtk_adjustment_get_value (self->vadj), page = gtk_adjustment_get_page_size (self->vadj);
  if (c->y - MARGIN < value)
    gtk_adjustment_set_value (self->vadj, c->y - MARGIN);
  else if (c->y + self->line_h + MARGIN > value + page)
    gtk_adjustment_set_value (self->vadj, c->y + self->line_h + MARGIN - page);
}

void
rs_token_strip_set_trace (RsTokenStrip *self, const RsTrace *trace, gint64 t0)
{
  gint64 n = trace ? trace->n_tokens : 0;
  gint64 old_n = self->chips->len;
  gboolean follow = self->selected < 0 || self->selected >= old_n - 1;
  t0 = CLAMP (t0, 0, MIN (old_n, n));
  g_array_set_size (self->chips, t0);
  for (gint64 t = t0; t < n; t++)
    {
      Chip c = { 0 };
      c.label = visible_text (g_ptr_array_index (trace->token_text, t));
      c.prompt = g_array_index (trace->is_prompt, guint8, t) != 0;
      measure_chip (self, &c);
      g_array_append_val (self->chips, c);
    }
  if (self->values->len > n)
    g_array_set_size (self->values, n);
  self->layout_width = -1;
  gint64 sel = self->selected;
  if (n == 0)
    sel = -1;
  else if (follow || sel >= n)
    sel = n - 1;
  if (sel != self->selected)
    {
      self->selected = sel;
      g_object_notify_by_pspec (G_OBJECT (self), selected_pspec);
    }
  /* A new line of chips changes the height the strip asks for; otherwise
   * a redraw is enough (no relayout of the window per token). */
  int old_h = self->content_h;
  relayout (self);
  if (self->layout_width < 0 || self->content_h != old_h)
    gtk_widget_queue_resize (GTK_WIDGET (self));
  else
    gtk_widget_queue_draw (GTK_WIDGET (self));
  if (follow)
    ensure_visible (self, sel);
}

void
rs_token_strip_set_values (RsTokenStrip *self, const double *values, gint64 n, gboolean categorical,
                           RsColormap colormap, double lo, double hi)
{
  g_array_set_size (self->values, 0);
  if (values)
    g_array_append_vals (self->values, values, n);
  self->categorical = categorical;
  self->colormap = colormap;
  if (isnan (lo) || isnan (hi))
    {
      lo = INFINITY;
      hi = -INFINITY;
      for (gint64 i = 0; i < n && values; i++)
        if (isfinite (values[i]))
          {
            lo = MIN (lo, values[i]);
            hi = MAX (hi, values[i]);
          }
    }
  self->have_range = lo <= hi;
  self->lo = lo;
  self->hi = hi;
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

void
rs_token_strip_set_value_format (RsTokenStrip *self, const char *format)
{
  g_free (self->value_format);
  self->value_format = g_strdup (format);
}

gboolean
rs_token_strip_get_range (RsTokenStrip *self, double *lo, double *hi)
{
  if (!self->have_range || self->categorical)
    return FALSE;
  *lo = self->lo;
  *hi = self->hi;
  return TRUE;
}

gint64
rs_token_strip_get_selected (RsTokenStrip *self)
{
  return self->selected;
}

gint64
rs_token_strip_get_n_tokens (RsTokenStrip *self)
{
  return self->chips->len;
}

void
rs_token_strip_set_selected (RsTokenStrip *self, gint64 t)
{
  if (self->chips->len == 0)
    t = -1;
  else
    t = CLAMP (t, -1, (gint64) self->chips->len - 1);
  if (t == self->selected)
    return;
  self->selected = t;
  ensure_visible (self, t);
  gtk_widget_queue_draw (GTK_WIDGET (self));
  g_object_notify_by_pspec (G_OBJECT (self), selected_pspec);
}

gboolean
rs_token_strip_get_chip_rect (RsTokenStrip *self, gint64 t, graphene_rect_t *rect)
{
  if (t < 0 || t >= (gint64) self->chips->len)
    return FALSE;
  Chip *c = &g_array_index (self->chips, Chip, t);
  graphene_rect_init (rect, c->x, c->y, c->w, self->line_h);
  return TRUE;
}

gint64
rs_token_strip_chip_at (RsTokenStrip *self, double x, double y)
{
  double scroll = self->vadj ? gtk_adjustment_get_value (self->vadj) : 0;
  y += scroll;
  /* binary search for the line, then a walk along it */
  guint lo = 0, hi = self->chips->len;
  while (lo < hi)
    {
      guint mid = (lo + hi) / 2;
      Chip *c = &g_array_index (self->chips, Chip, mid);
      if (c->y + self->line_h < y)
        lo = mid + 1;
      else
        hi = mid;
    }
  for (guint i = lo; i < self->chips->len; i++)
    {
      Chip *c = &g_array_index (self->chips, Chip, i);
      if (c->y > y)
        break;
      if (x >= c->x && x < c->x + c->w && y >= c->y && y < c->y + self->line_h)
        return i;
    }
  return -1;
}

static gboolean
is_dark (RsTokenStrip *self)
{
  gboolean dark = FALSE;
  g_object_get (gtk_widget_get_settings (GTK_WIDGET (self)), "gtk-application-prefer-dark-theme", &dark, NULL);
  return dark;
}

static void
category_rgb (double v, double rgb[3])
{
  /* golden-ratio hues: neighbouring ids get distant colours */
  double h = fmod (v * 0.618033988749895, 1.0) * 6.0, s = 0.55, l = 0.62;
  double c = (1 - fabs (2 * l - 1)) * s, x = c * (1 - fabs (fmod (h, 2.0) - 1)), m = l - c / 2;
  double r = 0, g = 0, b = 0;
  switch ((int) h)
    {
    case 0: r = c; g = x; break;
    case 1: r = x; g = c; break;
    case 2: g = c; b = x; break;
    case 3: g = x; b = c; break;
    case 4: r = x; b = c; break;
    default: r = c; b = x; break;
    }
  rgb[0] = r + m;
  rgb[1] = g + m;
  rgb[2] = b + m;
}

static void
rounded_rect (cairo_t *cr, double x, double y, double w, double h, double r)
{
  cairo_new_sub_path (cr);
  cairo_arc (cr, x + w - r, y + r, r, -G_PI / 2, 0);
  cairo_arc (cr, x + w - r, y + h - r, r, 0, G_PI / 2);
  cairo_arc (cr, x + r, y + h - r, r, G_PI / 2, G_PI);
  cairo_arc (cr, x + r, y + r, r, G_PI, 3 * G_PI / 2);
  cairo_close_path (cr);
}

void
rs_token_strip_draw (RsTokenStrip *self, cairo_t *cr, int width, int height)
{
  if (self->layout_width != width)
    rs_token_strip_layout (self, width);
  PangoLayout *layout = get_layout (self);
  gboolean dark = is_dark (self);
  double scroll = self->vadj ? gtk_adjustment_get_value (self->vadj) : 0;
  double neutral = dark ? 0.24 : 0.90;
  double fg = dark ? 0.92 : 0.13;

  cairo_save (cr);
  cairo_rectangle (cr, 0, 0, width, height);
  cairo_clip (cr);
  if (self->chips->len == 0)
    {
      pango_layout_set_text (layout, _("No tokens yet: write a prompt and press Step (Space) or Run (Ctrl+Return)."), -1);
      cairo_set_source_rgba (cr, fg, fg, fg, 0.6);
      cairo_move_to (cr, MARGIN + PAD_X, MARGIN + PAD_Y);
      pango_cairo_show_layout (cr, layout);
      cairo_restore (cr);
      return;
    }
  cairo_translate (cr, 0, -scroll);
  for (guint i = 0; i < self->chips->len; i++)
    {
      Chip *c = &g_array_index (self->chips, Chip, i);
      if (c->y + self->line_h < scroll)
        continue;
      if (c->y > scroll + height)
        break;
      double rgb[3] = { neutral, neutral, neutral };
      gboolean coloured = FALSE;
      if (i < self->values->len)
        {
          double v = g_array_index (self->values, double, i);
          if (isfinite (v))
            {
              coloured = TRUE;
              if (self->categorical)
                category_rgb (v, rgb);
              else
                rs_colormap_rgb (self->colormap, self->hi > self->lo ? (v - self->lo) / (self->hi - self->lo) : 0.5, rgb);
            }
        }
      rounded_rect (cr, c->x + 0.5, c->y + 0.5, c->w - 1, self->line_h - 1, 4);
      cairo_set_source_rgb (cr, rgb[0], rgb[1], rgb[2]);
      cairo_fill_preserve (cr);
      if ((gint64) i == self->selected)
        {
          cairo_set_source_rgb (cr, 0.21, 0.52, 0.89);
          cairo_set_line_width (cr, gtk_widget_has_focus (GTK_WIDGET (self)) ? 3 : 2);
          cairo_stroke (cr);
        }
      else if (c->prompt)
        {
          cairo_set_source_rgba (cr, fg, fg, fg, 0.35);
          cairo_set_line_width (cr, 1);
          cairo_stroke (cr);
        }
      else
        cairo_new_path (cr);
      double lum = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2];
      double text = coloured ? (lum > 0.5 ? 0.08 : 0.97) : fg;
      cairo_set_source_rgba (cr, text, text, text, c->prompt && !coloured ? 0.75 : 1.0);
      cairo_move_to (cr, c->x + (c->w - c->text_w) / 2, c->y + PAD_Y);
      pango_cairo_show_layout (cr, c->layout);
    }
  cairo_restore (cr);
}

static void
rs_token_strip_snapshot (GtkWidget *widget, GtkSnapshot *snapshot)
{
  int w = gtk_widget_get_width (widget), h = gtk_widget_get_height (widget);
  if (w <= 0 || h <= 0)
    return;
  cairo_t *cr = gtk_snapshot_append_cairo (snapshot, &GRAPHENE_RECT_INIT (0, 0, w, h));
  rs_token_strip_draw (RS_TOKEN_STRIP (widget), cr, w, h);
  cairo_destroy (cr);
}

static void
rs_token_strip_measure (GtkWidget *widget, GtkOrientation orientation, int for_size, int *minimum,
                        int *natural, int *minimum_baseline, int *natural_baseline)
{
  RsTokenStrip *self = RS_TOKEN_STRIP (widget);
  get_layout (self);
  if (orientation == GTK_ORIENTATION_HORIZONTAL)
    {
      *minimum = 100;
      *natural = 600;
      return;
    }
  *minimum = self->line_h + 2 * MARGIN;
  if (for_size <= 0)
    for_size = gtk_widget_get_width (widget);
  if (for_size > 0)
    {
      int saved = self->layout_width;
      *natural = rs_token_strip_layout (self, for_size);
      if (saved != for_size)
        self->layout_width = -1;
    }
  else
    *natural = *minimum;
}

static GtkSizeRequestMode
rs_token_strip_get_request_mode (GtkWidget *widget)
{
  return GTK_SIZE_REQUEST_HEIGHT_FOR_WIDTH;
}

static void
rs_token_strip_size_allocate (GtkWidget *widget, int width, int height, int baseline)
{
  RsTokenStrip *self = RS_TOKEN_STRIP (widget);
  if (self->layout_width != width)
    rs_token_strip_layout (self, width);
  update_adjustments (self);
}

static void
on_adjustment_changed (GtkAdjustment *adj, RsTokenStrip *self)
{
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

static void
set_adjustment (RsTokenStrip *self, GtkAdjustment **slot, GtkAdjustment *adj)
{
  if (*slot == adj && adj != NULL)
    return;
  if (*slot)
    {
      g_signal_handlers_disconnect_by_func (*slot, on_adjustment_changed, self);
      g_object_unref (*slot);
    }
  if (adj == NULL)
    adj = gtk_adjustment_new (0, 0, 0, 0, 0, 0);
  *slot = g_object_ref_sink (adj);
  g_signal_connect (adj, "value-changed", G_CALLBACK (on_adjustment_changed), self);
  update_adjustments (self);
}

static void
on_pressed (GtkGestureClick *click, int n_press, double x, double y, RsTokenStrip *self)
{
  gtk_widget_grab_focus (GTK_WIDGET (self));
  gint64 t = rs_token_strip_chip_at (self, x, y);
  if (t >= 0)
    rs_token_strip_set_selected (self, t);
}

/* The chip on the line above (dir -1) or below (+1) nearest in x. */
static gint64
chip_vertical (RsTokenStrip *self, gint64 t, int dir)
{
  if (t < 0 || t >= (gint64) self->chips->len)
    return t;
  Chip *c = &g_array_index (self->chips, Chip, t);
  double cx = c->x + c->w / 2, target_y = c->y + dir * (self->line_h + GAP_Y);
  gint64 best = t;
  double best_d = INFINITY;
  for (gint64 i = t + dir; i >= 0 && i < (gint64) self->chips->len; i += dir)
    {
      Chip *o = &g_array_index (self->chips, Chip, i);
      if (fabs (o->y - target_y) > 0.5)
        {
          if ((dir > 0 && o->y > target_y) || (dir < 0 && o->y < target_y))
            break;
          continue;
        }
      double d = fabs (o->x + o->w / 2 - cx);
      if (d < best_d)
        {
          best_d = d;
          best = i;
        }
    }
  return best;
}

static gboolean
on_key (GtkEventControllerKey *key, guint keyval, guint keycode, GdkModifierType state, RsTokenStrip *self)
{
  gint64 n = self->chips->len, t = self->selected;
  if (n == 0)
    return FALSE;
  switch (keyval)
    {
    case GDK_KEY_Left: case GDK_KEY_KP_Left: t = t < 0 ? n - 1 : MAX (t - 1, 0); break;
    case GDK_KEY_Right: case GDK_KEY_KP_Right: t = MIN (t + 1, n - 1); break;
    case GDK_KEY_Home: case GDK_KEY_KP_Home: t = 0; break;
    case GDK_KEY_End: case GDK_KEY_KP_End: t = n - 1; break;
    case GDK_KEY_Up: case GDK_KEY_KP_Up: t = chip_vertical (self, MAX (t, 0), -1); break;
    case GDK_KEY_Down: case GDK_KEY_KP_Down: t = chip_vertical (self, MAX (t, 0), 1); break;
    default: return FALSE;
    }
  rs_token_strip_set_selected (self, t);
  return TRUE;
}

static gboolean
on_query_tooltip (GtkWidget *widget, int x, int y, gboolean keyboard, GtkTooltip *tooltip, RsTokenStrip *self)
{
  gint64 t = keyboard ? self->selected : rs_token_strip_chip_at (self, x, y);
  if (t < 0)
    return FALSE;
  Chip *c = &g_array_index (self->chips, Chip, t);
  g_autoptr (GString) s = g_string_new (NULL);
  g_autofree char *esc = g_markup_escape_text (c->label, -1);
  g_string_append_printf (s, _("Token %lld <b>%s</b> (%s)"), (long long) t, esc,
                          c->prompt ? _("prompt") : _("generated"));
  if (t < (gint64) self->values->len && self->value_format)
    {
      double v = g_array_index (self->values, double, t);
      if (isfinite (v))
        {
          g_autofree char *value = g_strdup_printf (self->value_format, v);
          g_autofree char *ev = g_markup_escape_text (value, -1);
          g_string_append_printf (s, "\n%s", ev);
        }
    }
  gtk_tooltip_set_markup (tooltip, s->str);
  double scroll = self->vadj ? gtk_adjustment_get_value (self->vadj) : 0;
  gtk_tooltip_set_tip_area (tooltip, &(GdkRectangle) { (int) c->x, (int) (c->y - scroll), (int) c->w, self->line_h });
  return TRUE;
}

static void
rs_token_strip_css_changed (GtkWidget *widget, GtkCssStyleChange *change)
{
  RsTokenStrip *self = RS_TOKEN_STRIP (widget);
  GTK_WIDGET_CLASS (rs_token_strip_parent_class)->css_changed (widget, change);
  /* the font may have changed: measure again */
  g_clear_object (&self->layout);
  for (guint i = 0; i < self->chips->len; i++)
    measure_chip (self, &g_array_index (self->chips, Chip, i));
  self->layout_width = -1;
  gtk_widget_queue_resize (widget);
}

static void
rs_token_strip_get_property (GObject *object, guint id, GValue *value, GParamSpec *pspec)
{
  RsTokenStrip *self = RS_TOKEN_STRIP (object);
  switch (id)
    {
    case PROP_SELECTED: g_value_set_int64 (value, self->selected); break;
    case PROP_HADJUSTMENT: g_value_set_object (value, self->hadj); break;
    case PROP_VADJUSTMENT: g_value_set_object (value, self->vadj); break;
    case PROP_HSCROLL_POLICY: g_value_set_enum (value, self->hpolicy); break;
    case PROP_VSCROLL_POLICY: g_value_set_enum (value, self->vpolicy); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
    }
}

static void
rs_token_strip_set_property (GObject *object, guint id, const GValue *value, GParamSpec *pspec)
{
  RsTokenStrip *self = RS_TOKEN_STRIP (object);
  switch (id)
    {
    case PROP_SELECTED: rs_token_strip_set_selected (self, g_value_get_int64 (value)); break;
    case PROP_HADJUSTMENT: set_adjustment (self, &self->hadj, g_value_get_object (value)); break;
    case PROP_VADJUSTMENT: set_adjustment (self, &self->vadj, g_value_get_object (value)); break;
    case PROP_HSCROLL_POLICY: self->hpolicy = g_value_get_enum (value); break;
    case PROP_VSCROLL_POLICY: self->vpolicy = g_value_get_enum (value); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
    }
}

static void
rs_token_strip_dispose (GObject *object)
{
  RsTokenStrip *self = RS_TOKEN_STRIP (object);
  if (self->hadj)
    {
      g_signal_handlers_disconnect_by_func (self->hadj, on_adjustment_changed, self);
      g_clear_object (&self->hadj);
    }
  if (self->vadj)
    {
      g_signal_handlers_disconnect_by_func (self->vadj, on_adjustment_changed, self);
      g_clear_object (&self->vadj);
    }
  g_clear_object (&self->layout);
  G_OBJECT_CLASS (rs_token_strip_parent_class)->dispose (object);
}

static void
rs_token_strip_finalize (GObject *object)
{
  RsTokenStrip *self = RS_TOKEN_STRIP (object);
  g_array_unref (self->chips);
  g_array_unref (self->values);
  g_free (self->value_format);
  G_OBJECT_CLASS (rs_token_strip_parent_class)->finalize (object);
}

static void
rs_token_strip_class_init (RsTokenStripClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  object_class->get_property = rs_token_strip_get_property;
  object_class->set_property = rs_token_strip_set_property;
  object_class->dispose = rs_token_strip_dispose;
  object_class->finalize = rs_token_strip_finalize;
  widget_class->snapshot = rs_token_strip_snapshot;
  widget_class->measure = rs_token_strip_measure;
  widget_class->get_request_mode = rs_token_strip_get_request_mode;
  widget_class->size_allocate = rs_token_strip_size_allocate;
  widget_class->css_changed = rs_token_strip_css_changed;

  selected_pspec = g_param_spec_int64 ("selected", NULL, NULL, -1, G_MAXINT64, -1,
                                       G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_property (object_class, PROP_SELECTED, selected_pspec);
  g_object_class_override_property (object_class, PROP_HADJUSTMENT, "hadjustment");
  g_object_class_override_property (object_class, PROP_VADJUSTMENT, "vadjustment");
  g_object_class_override_property (object_class, PROP_HSCROLL_POLICY, "hscroll-policy");
  g_object_class_override_property (object_class, PROP_VSCROLL_POLICY, "vscroll-policy");

  gtk_widget_class_set_css_name (widget_class, "rstokenstrip");
  gtk_widget_class_set_accessible_role (widget_class, GTK_ACCESSIBLE_ROLE_LIST);
}

static void
rs_token_strip_init (RsTokenStrip *self)
{
  self->chips = g_array_new (FALSE, TRUE, sizeof (Chip));
  g_array_set_clear_func (self->chips, chip_clear);
  self->values = g_array_new (FALSE, FALSE, sizeof (double));
  self->selected = -1;
  self->layout_width = -1;
  self->lo = NAN;
  self->hi = NAN;
  gtk_widget_set_focusable (GTK_WIDGET (self), TRUE);
  gtk_widget_set_has_tooltip (GTK_WIDGET (self), TRUE);
  gtk_widget_set_overflow (GTK_WIDGET (self), GTK_OVERFLOW_HIDDEN);

  GtkGesture *click = gtk_gesture_click_new ();
  g_signal_connect (click, "pressed", G_CALLBACK (on_pressed), self);
  gtk_widget_add_controller (GTK_WIDGET (self), GTK_EVENT_CONTROLLER (click));
  GtkEventController *key = gtk_event_controller_key_new ();
  g_signal_connect (key, "key-pressed", G_CALLBACK (on_key), self);
  gtk_widget_add_controller (GTK_WIDGET (self), key);
  g_signal_connect (self, "query-tooltip", G_CALLBACK (on_query_tooltip), self);
  GtkEventController *focus = gtk_event_controller_focus_new ();
  g_signal_connect_swapped (focus, "enter", G_CALLBACK (gtk_widget_queue_draw), self);
  g_signal_connect_swapped (focus, "leave", G_CALLBACK (gtk_widget_queue_draw), self);
  gtk_widget_add_controller (GTK_WIDGET (self), focus);
}
