/* The numbers that Python passes to the C code for a name: repro/native/__init__.py reads this file
   (codes()) instead of keeping a copy, so the two sides cannot drift apart.

   A choice of repro.config is coded as <FIELD>_<VALUE> (config.activation = "scaled_tanh" is
   ACTIVATION_SCALED_TANH); the loader checks that the choices of repro.config.CHOICES and the codes
   here name the same values. */
#ifndef REPRO_CODES_H
#define REPRO_CODES_H

/* lenet5_step.c's Net: act, pool, head, loss */
enum { ACTIVATION_SCALED_TANH = 0, ACTIVATION_RELU = 1 };
enum { SUBSAMPLING_TRAINABLE = 0, SUBSAMPLING_AVERAGE = 1, SUBSAMPLING_MAX = 2 };
enum { OUTPUT_RBF = 0, OUTPUT_LINEAR = 1 };
enum { LOSS_MAP = 0, LOSS_ML = 1, LOSS_CE = 2 };

/* what lenet5_block and network_block do with each pattern */
enum { MODE_FORWARD = 0, MODE_EVALUATE = 1, MODE_ONLINE = 2, MODE_GRADIENT = 3 };

/* network_step.c's layer kinds */
enum { CONV = 0, POOL = 1, FULL = 2 };

/* lenet5_step.c's parameter slots, in the order of its pointer arrays: C1W is c1.weight, OUTB
   output.bias; a slot the network lacks (plain pooling, the RBF head) is NULL */
enum { C1W, C1B, S2W, S2B, C3W, C3B, S4W, S4B, C5W, C5B, F6W, F6B, OUTW, OUTB, SLOTS };

#endif
