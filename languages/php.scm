; PHP (tree-sitter-php, language_php: files starting with `<?php`). Capture convention: languages/README.md
; Names of namespaces and use-imports are backslash-qualified as written (`App\Models`).
; Only the braced form `namespace X { ... }` contains its members; `namespace X;` is a one-line
; definition, so classes after it are not qualified by it.

; ---------------------------------------------------------------- containers
(namespace_definition
  name: (namespace_name) @name) @definition.namespace

(class_declaration
  name: (name) @name) @definition.class

(interface_declaration
  name: (name) @name) @definition.interface

(trait_declaration
  name: (name) @name) @definition.trait

(enum_declaration
  name: (name) @name) @definition.enum

; ---------------------------------------------------------------- functions and methods
(function_definition
  name: (name) @name) @definition.function

; only methods with a body: interface and abstract method signatures stay in their container's chunk
(method_declaration
  name: (name) @name
  body: (compound_statement)) @definition.method

; ---------------------------------------------------------------- constants and properties
; `const X = 1, Y = 2;` at top level and in classes/interfaces/enums (one definition per element)
(const_declaration
  (const_element . (name) @name)) @definition.constant

; `private ?string $name = null, $other;` -> name, other
(property_declaration
  (property_element
    name: (variable_name (name) @name))) @definition.property

; constructor promotion: `public function __construct(private Repo $repo)`
(property_promotion_parameter
  name: (variable_name (name) @name)) @definition.property

; ---------------------------------------------------------------- imports
; use Foo\Bar; use Foo\Bar as Baz; use function Foo\bar; use Foo\Bar, Foo\Baz;
(namespace_use_declaration
  (namespace_use_clause . [(qualified_name) (name)] @import.name)) @import

; group use: use Foo\{A, B as C};  -> the common prefix `Foo`
(namespace_use_declaration
  (namespace_name) @import.name
  body: (namespace_use_group)) @import

; require / require_once / include / include_once "file.php"  (or __DIR__ . "/file.php": the string part)
(require_expression
  [(string) (encapsed_string)] @import.name) @import

(require_expression
  (binary_expression
    right: [(string) (encapsed_string)] @import.name)) @import

(require_once_expression
  [(string) (encapsed_string)] @import.name) @import

(require_once_expression
  (binary_expression
    right: [(string) (encapsed_string)] @import.name)) @import

(include_expression
  [(string) (encapsed_string)] @import.name) @import

(include_expression
  (binary_expression
    right: [(string) (encapsed_string)] @import.name)) @import

(include_once_expression
  [(string) (encapsed_string)] @import.name) @import

(include_once_expression
  (binary_expression
    right: [(string) (encapsed_string)] @import.name)) @import

; ---------------------------------------------------------------- references
; function calls: helper(), \App\helper()
(function_call_expression
  function: (name) @reference)

(function_call_expression
  function: (qualified_name (name) @reference .))

; $obj->method(), $obj?->method(), Foo::method()
(member_call_expression
  name: (name) @reference)

(nullsafe_member_call_expression
  name: (name) @reference)

(scoped_call_expression
  name: (name) @reference)

(scoped_call_expression
  scope: [(name) @reference (qualified_name (name) @reference .)])

; Foo::CONSTANT
(class_constant_access_expression
  . [(name) @reference (qualified_name (name) @reference .)])

; new Foo(), new \App\Foo()
(object_creation_expression
  [(name) @reference (qualified_name (name) @reference .)])

; extends / implements
(base_clause
  [(name) @reference (qualified_name (name) @reference .)])

(class_interface_clause
  [(name) @reference (qualified_name (name) @reference .)])

; type hints: parameters, return types, properties, catch clauses
(named_type
  [(name) @reference (qualified_name (name) @reference .)])

; trait use inside a class: use HasName;
(use_declaration
  [(name) @reference (qualified_name (name) @reference .)])
