; Bash (tree-sitter-bash). Capture convention: languages/README.md

; ---------------------------------------------------------------- functions
; `name() { ... }` and `function name { ... }`
(function_definition
  name: (word) @name) @definition.function

; ---------------------------------------------------------------- top-level variables
; LOG_FILE=/tmp/x.log
(program
  (variable_assignment
    name: (variable_name) @name) @definition.variable)

; export PATH=...; declare -a X=(...); typeset X=1
(program
  (declaration_command
    ["export" "declare" "typeset"]
    (variable_assignment
      name: (variable_name) @name)) @definition.variable)

; readonly MAX_RETRIES=3
(program
  (declaration_command
    "readonly"
    (variable_assignment
      name: (variable_name) @name)) @definition.constant)

; ---------------------------------------------------------------- imports
; source lib.sh / . "$DIR/lib.sh"  (the command word doubles as @reference for the predicate)
(command
  name: (command_name (word) @reference)
  .
  argument: [(word) (string) (raw_string) (concatenation) (simple_expansion) (expansion)] @import.name
  (#any-of? @reference "source" ".")) @import

; ---------------------------------------------------------------- references
; every invoked command or function: helper "$x" | grep foo
(command
  name: (command_name (word) @reference))
