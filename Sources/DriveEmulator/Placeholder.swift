public enum DriveEmulatorPlaceholder {}
