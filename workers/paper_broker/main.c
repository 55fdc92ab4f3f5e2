/* warden-paper-broker: see pb_main.c and docs/BROKER.md. */
#include "pb_server.h"

int main(int argc, char **argv) { return pb_main(argc, argv); }
