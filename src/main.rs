fn main() -> std::process::ExitCode {
    // Started by the Lambda runtime, the binary serves invocations; else it is the CLI.
    if dynamo_dr::lambda::is_lambda() {
        return dynamo_dr::lambda::main();
    }
    dynamo_dr::cli::main()
}
