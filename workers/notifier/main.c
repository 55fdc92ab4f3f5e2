/* warden-notifier: alerts to Slack, webhooks, email and the log.
 *   warden-notifier [--config FILE]     run as a worker (see nt.h) */
int nt_worker_main(int argc, char **argv);

int main(int argc, char **argv) { return nt_worker_main(argc, argv); }
