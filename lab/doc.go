// Package lab is the seamless QEMU lab: it builds a cached Debian bookworm
// guest disk (debootstrap, real Debian kernel packages, GRUB), boots copies of
// it under QEMU/TCG, drives the guest through qemu-guest-agent, forwards guest
// services to 127.0.0.1, and runs scenarios: guest commands at named phases
// plus host-side actions (a memcached client holding one TCP connection) and
// checks. See docs/lab.md.
package lab
