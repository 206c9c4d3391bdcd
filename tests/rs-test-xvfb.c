/* rs-test-xvfb.c: a private X server (Xvfb) for the GUI tests.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "rs-test-xvfb.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static GPid xvfb_pid;

static void
stop_at_exit (void)
{
  rs_test_xvfb_stop ();
}

gboolean
rs_test_xvfb_start (char **reason)
{
  g_setenv ("GDK_BACKEND", "x11", TRUE);
  g_setenv ("GSK_RENDERER", "cairo", TRUE);
  g_setenv ("GSETTINGS_BACKEND", "memory", TRUE);
  g_setenv ("NO_AT_BRIDGE", "1", TRUE);
  g_setenv ("GTK_A11Y", "none", TRUE);
  g_setenv ("GIO_USE_VFS", "local", TRUE);
  g_setenv ("GTK_USE_PORTAL", "0", TRUE);
  g_unsetenv ("WAYLAND_DISPLAY");

  g_autofree char *xvfb = g_find_program_in_path ("Xvfb");
  if (xvfb == NULL)
    {
      *reason = g_strdup ("Xvfb is not installed (apt-get install xvfb, or sh tools/install-deps.sh --test)");
      return FALSE;
    }
  int fds[2];
  if (pipe (fds) != 0)
    {
      *reason = g_strdup_printf ("pipe: %s", g_strerror (errno));
      return FALSE;
    }
  g_autofree char *fd_arg = g_strdup_printf ("%d", 3);
  char *argv[] = { xvfb, "-displayfd", fd_arg, "-screen", "0", "1600x1000x24", "-nolisten", "tcp",
                   "-noreset", NULL };
  int source_fds[] = { fds[1] }, target_fds[] = { 3 };
  g_autoptr (GError) error = NULL;
  if (!g_spawn_async_with_pipes_and_fds (NULL, (const char *const *) argv, NULL,
                                         G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDOUT_TO_DEV_NULL
                                           | G_SPAWN_STDERR_TO_DEV_NULL,
                                         NULL, NULL, -1, -1, -1, source_fds, target_fds, 1, &xvfb_pid, NULL,
                                         NULL, NULL, &error))
    {
      close (fds[0]);
      close (fds[1]);
      *reason = g_strdup_printf ("cannot start Xvfb: %s", error->message);
      return FALSE;
    }
  close (fds[1]);
  /* Xvfb writes the display number and a newline once it accepts clients. */
  char buf[32] = { 0 };
  size_t len = 0;
  gint64 deadline = g_get_monotonic_time () + 20 * G_USEC_PER_SEC;
  while (len < sizeof buf - 1 && (len == 0 || buf[len - 1] != '\n'))
    {
      struct pollfd p = { fds[0], POLLIN, 0 };
      int left = (int) ((deadline - g_get_monotonic_time ()) / 1000);
      if (left <= 0 || poll (&p, 1, left) <= 0)
        break;
      ssize_t r = read (fds[0], buf + len, sizeof buf - 1 - len);
      if (r <= 0)
        break;
      len += r;
    }
  close (fds[0]);
  if (len == 0 || buf[len - 1] != '\n')
    {
      rs_test_xvfb_stop ();
      *reason = g_strdup ("Xvfb did not start");
      return FALSE;
    }
  g_strchomp (buf);
  g_autofree char *display = g_strdup_printf (":%s", buf);
  g_setenv ("DISPLAY", display, TRUE);
  atexit (stop_at_exit);
  return TRUE;
}

void
rs_test_xvfb_stop (void)
{
  if (xvfb_pid <= 0)
    return;
  kill (xvfb_pid, SIGTERM);
  int status;
  waitpid (xvfb_pid, &status, 0);
  g_spawn_close_pid (xvfb_pid);
  xvfb_pid = 0;
}
