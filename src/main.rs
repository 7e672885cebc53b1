fn main() -> std::process::ExitCode {
    dynamo_dr::cli::main()
}
