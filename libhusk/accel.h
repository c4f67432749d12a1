/*
 * Accelerator choice, shared with `husk check`: KVM only where the CPU
 * has hardware virtualisation and /dev/kvm can create a VM.
 */
#ifndef HUSK_HV_ACCEL_H
#define HUSK_HV_ACCEL_H

#include <stddef.h>

/*
 * 1 when KVM can run a stock guest kernel here, 0 when not; reason
 * (n bytes) says why either way ("no vmx/svm in /proc/cpuinfo",
 * "KVM_CREATE_VM: Permission denied", ...).
 */
int husk_accel_detect(char *reason, size_t n);

#endif
