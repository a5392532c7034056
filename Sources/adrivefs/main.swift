import Foundation
import Logging
import MountCommand

// adrivefs — mount Aliyun Drive through FUSE. See `man adrivefs`.
let arguments = Array(CommandLine.arguments.dropFirst())
let invocation: Invocation
do {
    invocation = try ArgumentParser.parse(arguments, viaMountHelper: ArgumentParser.startedByMountHelper)
} catch {
    Daemon.fail("\(error)\n\(ArgumentParser.usage)")
    exit(2)
}

switch invocation {
case .help:
    print(ArgumentParser.usage)
    for spec in MountOptionSpec.all {
        print("  \(spec.name.padding(toLength: 22, withPad: " ", startingAt: 0)) \(spec.help)")
    }
case .version:
    print("adrivefs \(AdrivefsVersion.current)")
case .login(let options):
    exit(LoginCommand.login(options))
case .authStatus(let options):
    exit(LoginCommand.status(options))
case .status(let options):
    exit(StatusCommand.status(options))
case .refresh(let path):
    exit(StatusCommand.refresh(path: path))
case .shareSave(let options):
    exit(ShareSaveCommand.run(options))
case .authImport(let tokenFile):
    do {
        try Mounter.importToken(tokenFile: tokenFile)
    } catch {
        Daemon.fail("\(error)")
        exit(1)
    }
case .mount(let request):
    if !request.foreground && !Daemon.isChild {
        exit(Daemon.spawnAndWait(arguments: arguments))
    }
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = request.debug ? .debug : .info
        return handler
    }
    let status = Mounter.run(request) { error in
        if Daemon.isChild {
            Daemon.report(error, logFile: Mounter.stateDirectory + "/adrivefs.log")
        } else if let error {
            Daemon.fail(error)
        }
    }
    exit(status)
}
