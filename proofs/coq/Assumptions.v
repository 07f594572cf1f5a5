(** Prints the axioms each main theorem depends on; [check.sh] requires "Closed under the global context"
    for every one of them. *)
From CnnAsMlp Require Import Tied Conv.

Print Assumptions Tied.tied_mulv.
Print Assumptions Tied.tied_mulvT.
Print Assumptions Tied.tied_entry.
Print Assumptions Tied.mulvT_comp.
Print Assumptions Tied.Rtap_mult.
Print Assumptions Tied.mult_taps.
Print Assumptions Tied.T6_Rtap_gradient.
Print Assumptions Tied.T6_Rexp_gradient.
Print Assumptions Tied.T6_no_compound_Rexp_Rtap.
Print Assumptions Tied.T6_modes_differ.
Print Assumptions Tied.T6_modes_agree_iff.
Print Assumptions Conv.T1_conv_is_tied_product.
Print Assumptions Conv.T1_par_injective_on_entries.
Print Assumptions Conv.T1_entry_sets.
Print Assumptions Conv.T1_zeros_no_compound.
Print Assumptions Conv.T1_factorisation.
Print Assumptions Conv.out_len_range.
Print Assumptions Conv.T2_transpose_sums_taps.
Print Assumptions Conv.T2c_fold.
Print Assumptions Conv.Pi_fold.
Print Assumptions Conv.T2a_zeros.
Print Assumptions Conv.T6_zeros_Rexp_Rtap.
Print Assumptions Conv.T2a_rotated.
Print Assumptions Conv.flat2_lt.
Print Assumptions Conv.flat2_inj.
Print Assumptions Conv.padmap_reads.
Print Assumptions Conv.ccol_reads.
Print Assumptions Conv.T6_mult_hw.
