"""Tests that boot the built-in tiny guest under QEMU (TCG) and talk to its agent."""
