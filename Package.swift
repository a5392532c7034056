// swift-tools-version: 6.0
// adrivefs — mount Aliyun Drive (阿里云盘) on Linux through FUSE.
//
// Layering (arrows point down only; see README "Development"):
//   adrivefs (exe) ─► MountCommand ─► DriveFS ─► FUSE ─► CFuse (libfuse3)
//                                       └─► AliyunDrive ─► HTTPTransport ─► CCurl (libcurl)
//   DriveFS, HTTPTransport ─► CLinux (fallocate, thread names: glibc's _GNU_SOURCE calls)
//   adrivefs-emulator (exe) ─► DriveEmulator (SwiftNIO; never linked into adrivefs)
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "adrivefs",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "adrivefs", targets: ["adrivefs"]),
        .executable(name: "adrivefs-emulator", targets: ["adrivefs-emulator"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),  // emulator only
    ],
    targets: [
        // MARK: - C shims (only what Swift cannot call: macros, variadics, version pins)
        .target(name: "CFuse", path: "CFuse", linkerSettings: [.linkedLibrary("fuse3")]),
        .target(name: "CCurl", linkerSettings: [.linkedLibrary("curl")]),
        .target(name: "CSecp256k1", linkerSettings: [.linkedLibrary("secp256k1")]),
        .target(name: "CLinux"),
        .target(name: "CQRencode", linkerSettings: [.linkedLibrary("qrencode")]),
        .target(name: "CSystemd", linkerSettings: [.linkedLibrary("systemd")]),

        // MARK: - Libraries
        .target(
            name: "HTTPTransport",
            dependencies: ["CCurl", "CLinux", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .target(
            name: "FUSE",
            dependencies: ["CFuse", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .target(
            name: "AliyunDrive",
            dependencies: [
                "HTTPTransport", "CSecp256k1",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .target(
            name: "DriveFS",
            dependencies: ["FUSE", "AliyunDrive", "CLinux", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .target(
            name: "MountCommand",
            dependencies: [
                "DriveFS", "FUSE", "AliyunDrive", "HTTPTransport", "CQRencode", "CSystemd", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .target(
            name: "DriveEmulator",
            dependencies: [
                "CSecp256k1",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),

        // MARK: - Executables
        .executableTarget(
            name: "adrivefs",
            dependencies: ["MountCommand", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .executableTarget(
            name: "adrivefs-emulator",
            dependencies: [
                "DriveEmulator",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),

        .executableTarget(
            name: "adrivefs-bench",
            dependencies: ["HTTPTransport", "FUSE", "CLinux"],
            swiftSettings: strict),

        // MARK: - Tests
        .target(
            name: "EmulatorTestSupport",
            dependencies: ["HTTPTransport", "DriveEmulator"],
            path: "Tests/EmulatorTestSupport",
            swiftSettings: strict),
        .testTarget(
            name: "HTTPTransportTests",
            dependencies: [
                "HTTPTransport", "DriveEmulator", "EmulatorTestSupport", .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "EmulatorContractTests",
            dependencies: ["HTTPTransport", "DriveEmulator", "AliyunDrive", "EmulatorTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "AliyunDriveTests",
            dependencies: ["AliyunDrive", "HTTPTransport", "EmulatorTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "DriveFSTests",
            dependencies: ["DriveFS", "AliyunDrive", "FUSE", "HTTPTransport", "EmulatorTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "MountCommandTests",
            dependencies: ["MountCommand"],
            swiftSettings: strict),
        .testTarget(
            name: "MountTests",
            dependencies: [
                "DriveEmulator", "EmulatorTestSupport", "HTTPTransport", .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "FUSETests",
            dependencies: ["FUSE", "CFuse"],
            swiftSettings: strict),
        .testTarget(
            name: "CFuseTests",
            dependencies: ["CFuse"],
            swiftSettings: strict),
    ],
    swiftLanguageModes: [.v6]
)
