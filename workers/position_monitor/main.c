/* warden-position-monitor: watches open positions and closes them when an
 * exit rule fires. Run under warden as [worker:NAME] with a
 * [position_monitor] section; see pm_worker.h. */
#include "pm_worker.h"

int main(int argc, char **argv) { return pm_worker_main(argc, argv); }
