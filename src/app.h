/* `flagwire serve`: wires the store, the router and the server together and runs them
 * until a signal stops them. */
#ifndef FW_APP_H
#define FW_APP_H

#include "settings.h"

/* Runs the server in the calling (main) thread until SIGTERM or SIGINT, and returns the
 * process exit status: 0 after a clean stop, 1 when the start failed. */
int fw_app_serve(const struct fw_settings *settings);

#endif
